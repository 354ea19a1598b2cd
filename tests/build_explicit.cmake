# build_explicit.cmake - proves that the build names its sources: a copy of
# the source tree configures; the same copy with common/src/buf.c renamed
# fails at configure time, naming the file.
#
#   cmake -DAB_SOURCE_DIR=<repo> -DAB_WORK_DIR=<scratch dir> -P build_explicit.cmake
#
# Both configurations use -DAB_BUILD_TESTS=OFF, which must not look for
# cmocka (the binaries build without it): the first one checks that too.
if(NOT AB_SOURCE_DIR OR NOT AB_WORK_DIR)
  message(FATAL_ERROR "usage: cmake -DAB_SOURCE_DIR=... -DAB_WORK_DIR=... -P build_explicit.cmake")
endif()

set(src ${AB_WORK_DIR}/src)
file(REMOVE_RECURSE ${AB_WORK_DIR})
file(MAKE_DIRECTORY ${src})
# What the configuration reads (build trees sit at the top, not copied).
file(COPY ${AB_SOURCE_DIR}/CMakeLists.txt DESTINATION ${src})
foreach(dir cmake common destinations integration sources tests tools)
  file(COPY ${AB_SOURCE_DIR}/${dir} DESTINATION ${src}
       PATTERN "__pycache__" EXCLUDE)
endforeach()

function(configure name out_rc out_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${src} -B ${AB_WORK_DIR}/${name}
                          -DAB_BUILD_TESTS=OFF
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${out_rc} ${rc} PARENT_SCOPE)
  set(${out_text} "${out}${err}" PARENT_SCOPE)
endfunction()

# The intact copy configures, without looking for cmocka.
configure(intact rc text)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the intact source tree does not configure:\n${text}")
endif()
file(READ ${AB_WORK_DIR}/intact/CMakeCache.txt cache)
if(cache MATCHES "CMOCKA_")
  message(FATAL_ERROR "-DAB_BUILD_TESTS=OFF still looked for cmocka")
endif()

# A listed source renamed: configure fails and names it.
file(RENAME ${src}/common/src/buf.c ${src}/common/src/buffer.c)
configure(renamed rc text)
if(rc EQUAL 0)
  message(FATAL_ERROR "configure succeeded although common/src/buf.c is missing:\n${text}")
endif()
if(NOT text MATCHES "Cannot find source file:[ \t\r\n]+src/buf\\.c")
  message(FATAL_ERROR "configure failed without naming src/buf.c:\n${text}")
endif()
message(STATUS "a renamed source fails at configure time, naming it")
file(REMOVE_RECURSE ${AB_WORK_DIR})
