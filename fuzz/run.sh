#!/bin/sh
# run.sh [seconds] [harness...] - build the libFuzzer harnesses with clang
# (ASan+UBSan) and run each for the given time (default 60 s), two at a
# time, on a copy of its seed corpus. Prints executions, coverage and
# features per harness; exits non-zero when one found a crash (the input is
# kept in build/fuzz/artifacts/<harness>/). With AB_FUZZ_RUNS=N each
# harness stops after N executions instead (seconds 0: no time limit), the
# long run the README reports: AB_FUZZ_RUNS=10000000 fuzz/run.sh 0.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-60}
[ $# -gt 0 ] && shift
build=${AB_FUZZ_BUILD:-$root/build/fuzz}
harnesses=${*:-"fuzz_json fuzz_jsonl_reader fuzz_protocol fuzz_catalog fuzz_config fuzz_shops_token fuzz_mapping"}

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DAB_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $harnesses >/dev/null

run_one() {
    h=$1
    work=$build/corpus/$h
    art=$build/artifacts/$h/
    mkdir -p "$work" "$art"
    cp -n "$here/corpus/$h/"* "$work/" 2>/dev/null || true
    t0=$(date +%s)
    if "$build/fuzz/$h" -max_total_time="$secs" ${AB_FUZZ_RUNS:+-runs=$AB_FUZZ_RUNS} \
        -print_final_stats=1 -max_len=65536 \
        -artifact_prefix="$art" -timeout=10 -rss_limit_mb=2048 "$work" \
        >"$build/$h.log" 2>&1; then
        st=ok
    else
        st=FAILED
    fi
    t1=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$h.log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$build/$h.log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$build/$h.log" | tail -1 | cut -d' ' -f2)
    printf '%-20s %-6s executions %-10s coverage %-6s features %-6s seconds %s\n' "$h" \
        "$st" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$((t1 - t0))"
    [ "$st" = ok ] || { tail -30 "$build/$h.log"; return 1; }
}

fail=0
set -- $harnesses
while [ $# -gt 0 ]; do
    a=$1; shift
    if [ $# -gt 0 ]; then
        b=$1; shift
        run_one "$a" & pa=$!
        run_one "$b" || fail=1
        wait "$pa" || fail=1
    else
        run_one "$a" || fail=1
    fi
done
exit $fail
