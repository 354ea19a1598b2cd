#!/usr/bin/env bash
# demo.sh - the main job, end to end on this machine: builds the connectors,
# starts the local CRM360 emulator, generates a sample Airbyte stream
# (customers and orders with updates, a few invalid records, STATE messages),
# runs `destination-crm360 write` on it and shows what happened.
# Everything goes to ./demo-out; nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/demo-out
jobs=$(nproc 2>/dev/null || echo 2)

./integration/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$jobs" --target destination-crm360 >/dev/null

rm -rf "$out"; mkdir -p "$out"
python3 integration/emulators/crm360_emulator.py --port 0 --port-file "$out/crm360.port" \
  --api-key demo-key:read,write 2>"$out/emulator.log" &
emu=$!
trap 'kill $emu 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$out/crm360.port" ] && break; sleep 0.1; done
port=$(cat "$out/crm360.port")

python3 integration/gen_stream.py --customers 400 --orders 600 --update-rate 0.15 \
  --invalid 6 --state-every 100 --seed 7 --out "$out/input.jsonl" --expected "$out/expected.json"

cat >"$out/config.json" <<JSON
{"api_url": "http://127.0.0.1:$port", "api_key": "demo-key", "brand": "aurora",
 "batch_size": 200, "max_in_flight": 4, "requests_per_second": 10, "burst": 20,
 "dead_letter_path": "$out/rejected-records.jsonl"}
JSON
cat >"$out/catalog.json" <<'JSON'
{"streams": [
 {"stream": {"name": "customers", "json_schema": {"type": "object"}, "supported_sync_modes": ["incremental"]},
  "sync_mode": "incremental", "destination_sync_mode": "append_dedup", "primary_key": [["external_id"]],
  "cursor_field": ["updated_at"], "generation_id": 1, "minimum_generation_id": 0, "sync_id": 1001},
 {"stream": {"name": "orders", "json_schema": {"type": "object"}, "supported_sync_modes": ["incremental"]},
  "sync_mode": "incremental", "destination_sync_mode": "append_dedup", "primary_key": [["external_id"]],
  "cursor_field": ["updated_at"], "generation_id": 1, "minimum_generation_id": 0, "sync_id": 1001}]}
JSON

echo "== destination-crm360 check"
build/release/destinations/crm360/destination-crm360 check --config "$out/config.json"
echo
echo "== destination-crm360 write < input.jsonl ($(wc -l <"$out/input.jsonl") messages)"
set +e
build/release/destinations/crm360/destination-crm360 write --config "$out/config.json" \
  --catalog "$out/catalog.json" <"$out/input.jsonl" >"$out/output.jsonl"
rc=$?
set -e
echo "exit code: $rc"
python3 integration/show_run.py --output "$out/output.jsonl" \
  --dead-letters "$out/rejected-records.jsonl" --emulator "http://127.0.0.1:$port"
echo
echo "files: $out (input.jsonl, output.jsonl, rejected-records.jsonl, config.json, catalog.json)"
exit $rc
