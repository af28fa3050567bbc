#!/usr/bin/env bash
# Push throughput of `evault serve` (loopback, release build) with and without heavy concurrent
# reads, which the access log records (bench for issue 5: "high read volume must not slow
# pushes").
#
# Three runs of the same pushes (PUSHERS curl processes, PUSHES small new files in all, each a
# new blob and record): with no read load; with READERS curl loops on GET /v1/whoami (same token
# authentication, not a logged read: the cost of the read traffic alone); and with READERS curl
# loops on GET /v1/records/{id} and GET /v1/blobs/{digest} (logged reads: each an access event).
# Read rates come from the server's /metrics; the access log's events are counted in access.db.
#
#   bench/access.sh
#   PUSHES=600 PUSHERS=2 READERS=6 bench/access.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PUSHES=${PUSHES:-400}
PUSHERS=${PUSHERS:-2}
READERS=${READERS:-4}
cargo build --release --locked -p evault >/dev/null 2>&1
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/evault
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evault-bench.XXXXXX")
SERVER_PID=
READER_PIDS=()
stop_readers() {
  for pid in "${READER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${READER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  READER_PIDS=()
}
cleanup() {
  stop_readers
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
SHA=0123456789abcdef0123456789abcdef01234567
VAULT=$WORK/vault

"$BIN" --data-dir "$VAULT" init >/dev/null
PUSHER=$("$BIN" --data-dir "$VAULT" token create --name ci --role pusher 2>/dev/null)
READER=$("$BIN" --data-dir "$VAULT" token create --name reader --role auditor 2>/dev/null)
"$BIN" --data-dir "$VAULT" serve --listen 127.0.0.1:0 2>"$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  grep -q "listening on" "$WORK/serve.log" 2>/dev/null && break
  sleep 0.1
done
URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/serve.log" | head -1)

# The evidence the readers read.
head -c 65536 /dev/urandom >"$WORK/seed.bin"
SEED=$(curl -sf -X POST --data-binary @"$WORK/seed.bin" -H "Authorization: Bearer $PUSHER" \
  "$URL/v1/push?blueprint=bench&version=1&git_sha=$SHA&name=seed.bin")
ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["id"])' "$SEED")
DIGEST=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["digest"])' "$SEED")

# One curl config per pusher: PUSHES/PUSHERS pushes of distinct content over one connection.
push_config() { # run, pusher
  local cfg=$WORK/push-$1-$2.cfg n=$((PUSHES / PUSHERS))
  : >"$cfg"
  for i in $(seq 1 "$n"); do
    # `next` separates requests; one after the last would start an empty one.
    [ "$i" = 1 ] || printf 'next\n'
    printf 'url = "%s/v1/push?blueprint=bench&version=1&git_sha=%s&name=%s-%s-%s.txt"\n' "$URL" "$SHA" "$1" "$2" "$i"
    printf 'data-binary = "bench push %s %s %s: %s"\n' "$1" "$2" "$i" "$(head -c 512 /dev/zero | tr '\0' x)"
    printf 'header = "Authorization: Bearer %s"\nsilent\noutput = "/dev/null"\n' "$PUSHER"
    printf 'write-out = "%%{http_code}\\n"\n'
  done >"$cfg"
  echo "$cfg"
}

start_readers() { # logged | unlogged
  local k path
  for k in $(seq 1 "$READERS"); do
    if [ "$1" = unlogged ]; then
      path=/v1/whoami
    elif [ $((k % 2)) = 1 ]; then
      path=/v1/records/$ID
    else
      path=/v1/blobs/$DIGEST
    fi
    # A URL glob: one connection, requests back to back until killed (the handlers ignore n).
    curl -s -H "Authorization: Bearer $READER" "$URL$path?n=[1-100000000]" >/dev/null 2>&1 &
    READER_PIDS+=($!)
  done
}

# GET requests answered so far on the read routes, from /metrics.
reads_so_far() {
  curl -sf "$URL/metrics" | awk '
    /^evault_http_requests_total\{/ && /method="GET"/ &&
    (/route="\/v1\/records\/\{id\}"/ || /route="\/v1\/blobs\/\{digest\}"/ || /route="\/v1\/whoami"/) { n += $NF }
    END { printf "%d\n", n }'
}

events_so_far() {
  python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from access_events").fetchone()[0])' "$VAULT/access.db"
}

run() { # label, read load (none | unlogged | logged)
  local label=$1 load=$2 cfgs=() pids=() k
  for k in $(seq 1 "$PUSHERS"); do cfgs+=("$(push_config "$load" "$k")"); done
  local r_start e_start reads0 t0 t1 reads1 r_end e_end
  r_start=$(reads_so_far)
  e_start=$(events_so_far)
  [ "$load" != none ] && { start_readers "$load"; sleep 1; }
  reads0=$(reads_so_far)
  t0=$(date +%s.%N)
  for k in $(seq 1 "$PUSHERS"); do
    curl -K "${cfgs[$((k - 1))]}" >"$WORK/codes-$load-$k" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  t1=$(date +%s.%N)
  reads1=$(reads_so_far)
  stop_readers
  sleep 0.5
  r_end=$(reads_so_far)
  e_end=$(events_so_far)
  local ok total
  ok=$(cat "$WORK"/codes-"$load"-* | grep -c '^201$' || true)
  total=$(cat "$WORK"/codes-"$load"-* | wc -l)
  [ "$ok" = "$total" ] || { echo "only $ok of $total pushes answered 201" >&2; exit 1; }
  python3 - "$label" "$total" "$t0" "$t1" "$reads0" "$reads1" "$((r_end - r_start))" "$((e_end - e_start))" <<'PY'
import sys
label, pushes, t0, t1, r0, r1, reads_all, events = sys.argv[1:]
secs = float(t1) - float(t0)
reads = int(r1) - int(r0)
rate = f"{reads / secs:.0f} reads/s" if reads else "-"
print(f"| {label} | {pushes} | {secs:.2f} s | {int(pushes) / secs:.0f} | {rate} | {reads_all} | {events} |")
PY
}

echo "| read load during the pushes | pushes | wall time | pushes/s | reads during the pushes | reads in the run | access events written |"
echo "|---|---|---|---|---|---|---|"
run "none" none
run "$READERS curl loops on GET /v1/whoami (not logged)" unlogged
run "$READERS curl loops on GET /v1/records/{id} and /v1/blobs/{digest} (logged)" logged
