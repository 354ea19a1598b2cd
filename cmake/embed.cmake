# embed.cmake - JSON files compiled into the binary as NUL-terminated C arrays.
#
# ab_embed_json(<target> <symbol> <file>) generates, in the build tree,
# embed/<symbol>.c defining `const char <symbol>[]` (the file's bytes and a
# trailing NUL) and adds it to <target>. The generation runs at build time
# through this very file in script mode (cmake -P), so editing the JSON
# rebuilds what embeds it, with no tool other than CMake. A file that is not
# valid JSON fails the build, naming the file and the problem.

if(CMAKE_SCRIPT_MODE_FILE)
  # Script mode: -DIN=<json> -DOUT=<c file> -DSYMBOL=<name>
  file(READ "${IN}" text)
  if(NOT CMAKE_VERSION VERSION_LESS 3.19)
    string(JSON kind ERROR_VARIABLE problem TYPE "${text}")
    if(problem)
      message(FATAL_ERROR "${IN}: not valid JSON: ${problem}")
    endif()
    if(NOT kind STREQUAL "OBJECT")
      message(FATAL_ERROR "${IN}: the top level must be a JSON object, not ${kind}")
    endif()
  endif()
  file(READ "${IN}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
  # 12 bytes a line (CMake regexes have no {n})
  set(one "'\\\\x[0-9a-f][0-9a-f]',")
  string(REPEAT "${one}" 12 line)
  string(REGEX REPLACE "(${line})" "\\1\n    " bytes "${bytes}")
  get_filename_component(name "${IN}" NAME)
  file(WRITE "${OUT}"
    "/* Generated from ${name} by cmake/embed.cmake: do not edit. */\n"
    "extern const char ${SYMBOL}[];\n"
    "const char ${SYMBOL}[] = {\n    ${bytes}'\\0'};\n")
  return()
endif()

function(ab_embed_json target symbol file)
  set(script "${CMAKE_CURRENT_FUNCTION_LIST_FILE}")
  get_filename_component(in "${file}" ABSOLUTE)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/embed/${symbol}.c")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND ${CMAKE_COMMAND} -DIN=${in} -DOUT=${out} -DSYMBOL=${symbol} -P ${script}
    DEPENDS "${in}" ${script}
    COMMENT "Embedding ${file} as ${symbol}"
    VERBATIM)
  target_sources(${target} PRIVATE "${out}")
endfunction()
