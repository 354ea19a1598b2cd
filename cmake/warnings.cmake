# Warning set, sanitizers, assertions and the unit-test helper shared by every target.
add_library(ab_warnings INTERFACE)
target_compile_definitions(ab_warnings INTERFACE _POSIX_C_SOURCE=200809L)
target_compile_options(ab_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wold-style-definition -Wformat=2 -Wundef -Wcast-qual -Wwrite-strings
  -Wpointer-arith -Wvla -Wimplicit-fallthrough -Wnull-dereference
  -Wdouble-promotion -Wconversion -Wsign-conversion
  $<$<BOOL:${AB_WERROR}>:-Werror>)
if(AB_SANITIZE)
  target_compile_options(ab_warnings INTERFACE -fsanitize=address,undefined
    -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(ab_warnings INTERFACE -fsanitize=address,undefined)
endif()
# AB_ASSERT (ab/assert.h) checks invariants in Debug and sanitizer builds and
# is compiled out of release builds.
if(AB_SANITIZE OR CMAKE_BUILD_TYPE STREQUAL "Debug")
  set(AB_ASSERTIONS ON)
  target_compile_definitions(ab_warnings INTERFACE AB_ASSERTIONS=1)
else()
  set(AB_ASSERTIONS OFF)
endif()

# ab_add_unit_test(name dir libs...): one cmocka binary per module, from
# dir/name.c; the private headers of common/ (src/*_int.h) are reachable.
# Does nothing when AB_BUILD_TESTS is OFF.
function(ab_add_unit_test name dir)
  if(NOT AB_BUILD_TESTS)
    return()
  endif()
  add_executable(${name} ${dir}/${name}.c)
  target_link_libraries(${name} PRIVATE ${ARGN} PkgConfig::CMOCKA ab_warnings)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests
                                             ${PROJECT_SOURCE_DIR}/common/src)
  target_compile_definitions(${name} PRIVATE
    AB_TEST_DATA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/${dir}/data")
  if(AB_VALGRIND)
    add_test(NAME ${name} COMMAND valgrind --error-exitcode=1 --leak-check=full
             --errors-for-leak-kinds=definite,indirect $<TARGET_FILE:${name}>)
  else()
    add_test(NAME ${name} COMMAND ${name})
  endif()
  set_tests_properties(${name} PROPERTIES LABELS unit)
endfunction()
