#!/usr/bin/env bash
# Push and get of one large file through `evault serve` (loopback), in a release build: client
# wall time and peak RSS, and the server's peak RSS (VmHWM) after each step.
#
#   bench/http.sh             # 1 GiB
#   SIZE_MIB=256 bench/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
cargo build --release --locked -p evault >/dev/null 2>&1
BIN=$PWD/target/release/evault
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evault-bench.XXXXXX")
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
SHA=0123456789abcdef0123456789abcdef01234567

"$BIN" --data-dir "$WORK/vault" init >/dev/null
export EVAULT_TOKEN
EVAULT_TOKEN=$("$BIN" --data-dir "$WORK/vault" token create --name bench --role admin 2>/dev/null)
"$BIN" --data-dir "$WORK/vault" serve --listen 127.0.0.1:0 2>"$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  grep -q "listening on" "$WORK/serve.log" 2>/dev/null && break
  sleep 0.1
done
export EVAULT_SERVER
EVAULT_SERVER=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/serve.log" | head -1)
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/big.bin"

server_hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$SERVER_PID/status"; }
measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>&1
  local out; out=$(tail -1 "$WORK/time")
  local secs=${out% *} kib=${out#* }
  local rate; rate=$(python3 -c "print(f'{$SIZE_MIB/max($secs,0.001):.0f}')")
  printf '| %s | %s MiB | %.2f s | %s MiB/s | %s MiB | %s MiB |\n' "$label" "$SIZE_MIB" "$secs" "$rate" "$((kib / 1024))" "$(server_hwm)"
}

echo "| operation (over HTTP, loopback) | size | wall time | throughput | client peak RSS | server peak RSS so far |"
echo "|---|---|---|---|---|---|"
measure "push big.bin" "$BIN" push "$WORK/big.bin" --blueprint bench --version 1 --git-sha $SHA
DIGEST=$("$BIN" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["digest"])')
measure "get -o FILE (download, verify, rename)" "$BIN" get "$DIGEST" -o "$WORK/out"
cmp -s "$WORK/out" "$WORK/big.bin" || { echo "round trip differs" >&2; exit 1; }
