#!/usr/bin/env bash
# run_tests.sh - the whole test suite: format check, gcc build with every
# test, cppcheck, clang ASan+UBSan build with the unit, end-to-end and bad-input tests,
# and the unit tests under valgrind. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

./integration/install-deps.sh

step() { printf '\n=== %s\n' "$*"; }

step "format"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

step "stdout belongs to the emitter"
if git grep -nE '\b(printf|puts)\(|fputs\([^)]*stdout|fwrite\([^)]*stdout' -- \
     'common/src' 'destinations' 'sources' ':!common/src/emitter.c' ':!*/tests/*'; then
  echo "only common/src/emitter.c may write to stdout" >&2
  exit 1
fi

step "gcc build, all tests"
cmake -S . -B build/gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/gcc -j"$jobs"
(cd build/gcc && ctest --output-on-failure -j"$jobs")

step "static analysis (cppcheck)"
cppcheck --project=build/gcc/compile_commands.json --enable=warning,performance,portability \
  --inline-suppr --suppress=missingIncludeSystem --error-exitcode=1 -q

step "clang ASan+UBSan build: unit, end-to-end and bad-input tests"
cmake -S . -B build/asan -DCMAKE_C_COMPILER=clang -DAB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/asan -j"$jobs"
(cd build/asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -LE 'slow|bench')

step "libFuzzer harnesses, 60 s each, two at a time"
./fuzz/run.sh 60

step "unit tests under valgrind"
cmake -S . -B build/vg -DAB_VALGRIND=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/vg -j"$jobs"
(cd build/vg && ctest --output-on-failure -j"$jobs" -L unit)

echo
echo "all suites passed ($root)"
