# shops.cmake - ctest registration of the destination-shops integration tests.
# Included by integration/CMakeLists.txt once it found python3. Each script
# is Python 3 (standard library only), runs the real binary against the Shops
# emulator (or, for the benchmark, also a minimal fast sink) on a free port in
# its own temporary directory, prints a unittest-style summary and exits
# non-zero on failure.
#
#   ctest -L integration        end-to-end, replace, bad-input and crash tests
#   ctest -L integration -LE slow   ... without the crash test (~1 min)
#   ctest -L bench              benchmark smoke (--quick); prints figures only
set(_shp_python ${Python3_EXECUTABLE})
set(_shp_dir ${CMAKE_CURRENT_LIST_DIR})

add_test(NAME shops_e2e
         COMMAND ${_shp_python} ${_shp_dir}/test_shops_e2e.py --bin $<TARGET_FILE:destination-shops>)
add_test(NAME shops_replace_incomplete
         COMMAND ${_shp_python} ${_shp_dir}/test_shops_replace_incomplete.py
                 --bin $<TARGET_FILE:destination-shops>)
add_test(NAME shops_badinput
         COMMAND ${_shp_python} ${_shp_dir}/test_shops_badinput.py
                 --bin $<TARGET_FILE:destination-shops>)
add_test(NAME shops_refresh
         COMMAND ${_shp_python} ${_shp_dir}/test_shops_refresh.py
                 --bin $<TARGET_FILE:destination-shops>)
set_tests_properties(shops_e2e shops_replace_incomplete shops_badinput shops_refresh
                     PROPERTIES LABELS integration TIMEOUT 600)

# SIGKILL at >= 10 points of two 20,000-record runs under faults (~1-2 min)
add_test(NAME shops_crash
         COMMAND ${_shp_python} ${_shp_dir}/test_shops_crash.py --bin $<TARGET_FILE:destination-shops>)
set_tests_properties(shops_crash PROPERTIES LABELS "integration;slow" TIMEOUT 900)

add_test(NAME bench_shops
         COMMAND ${_shp_python} ${_shp_dir}/bench_shops.py --bin $<TARGET_FILE:destination-shops>
                 --quick)
# alone, so that the figures it prints are not skewed by the other tests
set_tests_properties(bench_shops PROPERTIES LABELS bench TIMEOUT 300 RUN_SERIAL TRUE)

# load, replay without a catalog and dry runs of destination-shops
add_test(NAME shops_load
         COMMAND ${_shp_python} ${_shp_dir}/test_shops_load.py --bin $<TARGET_FILE:destination-shops>)
set_tests_properties(shops_load PROPERTIES LABELS integration TIMEOUT 600)

# Shops' item rules checked before sending: the emulator agrees with the
# rules table; dry runs report the real runs' rejections and send nothing
add_test(NAME shops_dryrun
         COMMAND ${_shp_python} ${_shp_dir}/test_shops_dryrun.py --bin $<TARGET_FILE:destination-shops>)
set_tests_properties(shops_dryrun PROPERTIES LABELS integration TIMEOUT 300)
