#!/usr/bin/env bash
# What the tamper-evident log costs pushes, and what its proofs cost as it grows, in release
# builds: the current tree against a baseline built at REV (the last commit before the log),
# both run on identical workloads, several repetitions each, medians reported.
#
#   bench/log.sh                                  # builds both (baseline in a temporary worktree)
#   EVAULT_BIN=... BASELINE_BIN=... bench/log.sh  # binaries already built
#   REPS=3 RECORDS=2000 PUSHES=300 SIZES="1000 10000" bench/log.sh   # quicker
#
# Workloads:
#   a. one push of RECORDS tiny distinct CycloneDX SBOMs into a fresh embedded vault: records/s;
#   b. PUSHES sequential single-file pushes to `evault serve` on 127.0.0.1 (one transaction and,
#      with the log, one signed checkpoint each), by 1, 2 and 4 concurrent keep-alive clients:
#      pushes/s;
#   c. current binary only: a vault grown to SIZES log entries (2 per new record: blob, record);
#      at each size `evault log prove` (entries near the start, middle and end),
#      `evault log consistency --from K` and `evault log verify --no-blobs`, with `evault log
#      key` (process start and vault open, no proof work) as the floor.
#
# Prints a Markdown section for docs/performance.md on stdout; progress goes to stderr.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
REPO=$PWD
REV=${REV:-381b629}
REPS=${REPS:-5}                     # repetitions of workloads a and b (medians)
RECORDS=${RECORDS:-5000}            # files in the push of workload a
PUSHES=${PUSHES:-1000}              # single-file pushes per run of workload b
CLIENTS=${CLIENTS:-"1 2 4"}         # concurrent clients in workload b
SIZES=${SIZES:-"1000 10000 100000"} # log sizes (entries) of workload c, ascending
PROOF_REPS=${PROOF_REPS:-7}         # repetitions of each proof command (median)
VERIFY_REPS=${VERIFY_REPS:-3}       # repetitions of `log verify --no-blobs` (median)
CHUNK=${CHUNK:-10000}               # files per push while growing (limits.max_push_files)
BASELINE_TARGET=${BASELINE_TARGET:-${TMPDIR:-/tmp}/evault-baseline-target}
SHA=0123456789abcdef0123456789abcdef01234567

WORK=$(mktemp -d "${TMPDIR:-/tmp}/evault-bench.XXXXXX")
WORKTREE=
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$WORKTREE" ] && [ -d "$WORKTREE" ]; then git -C "$REPO" worktree remove --force "$WORKTREE" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
note() { echo "[log.sh $(date +%T)] $*" >&2; }

# Runs a command quietly; on failure shows what it said and stops.
quiet() {
  "$@" >"$WORK/cmd.out" 2>"$WORK/cmd.err" || {
    local rc=$?
    echo "failed ($rc): $*" >&2
    tail -20 "$WORK/cmd.err" >&2
    exit 1
  }
}
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.6f}")' "$@"; }
calc() { python3 -c "print($1)"; }

# --- binaries -------------------------------------------------------------------------------
if [ -z "${EVAULT_BIN:-}" ]; then
  note "building the current release binary"
  quiet cargo build --release --locked -p evault
  EVAULT_BIN=$REPO/target/release/evault
fi
if [ -z "${BASELINE_BIN:-}" ]; then
  WORKTREE=$WORK/baseline-src
  note "building the baseline at $REV in a temporary worktree (target dir $BASELINE_TARGET)"
  quiet git -C "$REPO" worktree add --detach "$WORKTREE" "$REV"
  (cd "$WORKTREE" && CARGO_TARGET_DIR=$BASELINE_TARGET quiet cargo build --release --locked -p evault)
  cp "$BASELINE_TARGET/release/evault" "$WORK/evault-baseline"
  BASELINE_BIN=$WORK/evault-baseline
  git -C "$REPO" worktree remove --force "$WORKTREE"
  WORKTREE=
fi
CUR_LABEL="current tree (log)"
BASE_LABEL="$REV (no log)"

# --- inputs ---------------------------------------------------------------------------------
# Tiny distinct CycloneDX SBOMs, 1 to 3 components each: gen DIR COUNT PREFIX
gen() {
  python3 - "$@" <<'PY'
import json, os, sys
root, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(n):
    d = os.path.join(root, f"d{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
           "metadata": {"component": {"type": "application", "name": f"{prefix}-svc-{i}"}},
           "components": [{"type": "library", "name": f"{prefix}-pkg-{i}-{j}",
                           "version": f"1.{j}.{i % 97}",
                           "purl": f"pkg:npm/{prefix}-pkg-{i}-{j}@1.{j}.{i % 97}"}
                          for j in range(1 + i % 3)]}
    with open(os.path.join(d, f"sbom-{i}.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
PY
}

# Keep-alive HTTP clients pushing one file per request: push.py URL DIR CLIENTS -> seconds
cat >"$WORK/push.py" <<'PY'
import http.client, os, sys, threading, time, urllib.parse
url, root, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
token = os.environ["EVAULT_TOKEN"]
u = urllib.parse.urlsplit(url)
files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs)
bodies = [(os.path.relpath(p, root), open(p, "rb").read()) for p in files]
errors = []
start = threading.Barrier(clients + 1)
def worker(mine):
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    conn.connect()
    start.wait()
    for name, body in mine:
        q = urllib.parse.urlencode({"blueprint": "bench", "version": "1",
                                    "git_sha": "0123456789abcdef0123456789abcdef01234567",
                                    "name": os.path.basename(name)})
        conn.request("POST", f"/v1/push?{q}", body=body,
                     headers={"Authorization": f"Bearer {token}",
                              "Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 201:
            errors.append(f"{name}: {r.status} {data[:300]!r}")
            return
threads = [threading.Thread(target=worker, args=(bodies[i::clients],)) for i in range(clients)]
for t in threads:
    t.start()
start.wait()
t0 = time.perf_counter()
for t in threads:
    t.join()
elapsed = time.perf_counter() - t0
if errors:
    sys.exit("push failed: " + "; ".join(errors[:3]))
print(f"{elapsed:.6f}")
PY

note "generating inputs ($RECORDS files for a, $PUSHES for b)"
gen "$WORK/records" "$RECORDS" rec
gen "$WORK/pushes" "$PUSHES" one

# --- a. many records in one push -----------------------------------------------------------
push_once() { # bin -> RESULT: seconds of one push of $WORK/records into a fresh vault
  local bin=$1 v=$WORK/va
  rm -rf "$v"
  quiet "$bin" --data-dir "$v" init
  sync
  local t0=$EPOCHREALTIME
  quiet "$bin" --data-dir "$v" push "$WORK/records" --blueprint bench --version 1 --git-sha $SHA
  local t1=$EPOCHREALTIME
  local n; n=$("$bin" --data-dir "$v" ls --limit 100000 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  [ "$n" = "$RECORDS" ] || { echo "expected $RECORDS records, found $n" >&2; exit 1; }
  RESULT=$(calc "$t1 - $t0")
}
A_BASE=() A_CUR=()
for rep in $(seq "$REPS"); do
  note "a. one push of $RECORDS records, repetition $rep/$REPS"
  # Alternate which binary goes first so that drift in the disk's fsync latency hits both.
  if [ $((rep % 2)) = 1 ]; then
    push_once "$BASELINE_BIN"; A_BASE+=("$RESULT"); push_once "$EVAULT_BIN"; A_CUR+=("$RESULT")
  else
    push_once "$EVAULT_BIN"; A_CUR+=("$RESULT"); push_once "$BASELINE_BIN"; A_BASE+=("$RESULT")
  fi
done
# The current binary's log holds one entry per blob and per record, under one checkpoint.
SIZE_A=$("$EVAULT_BIN" --data-dir "$WORK/va" log checkpoint --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')

# --- b. many small pushes over HTTP ---------------------------------------------------------
start_server() { # bin vault
  "$1" --data-dir "$2" serve --listen 127.0.0.1:0 >/dev/null 2>"$WORK/serve.log" &
  SERVER_PID=$!
  for _ in $(seq 200); do
    grep -q "listening on" "$WORK/serve.log" 2>/dev/null && break
    sleep 0.05
  done
  SERVER_URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/serve.log" | head -1)
  [ -n "$SERVER_URL" ] || { echo "the server did not start" >&2; cat "$WORK/serve.log" >&2; exit 1; }
}
stop_server() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
http_once() { # bin clients -> RESULT: seconds for $PUSHES pushes
  local bin=$1 clients=$2 v=$WORK/vb
  rm -rf "$v"
  quiet "$bin" --data-dir "$v" init
  local token; token=$("$bin" --data-dir "$v" token create --name bench --role pusher 2>/dev/null)
  start_server "$bin" "$v"
  sync
  RESULT=$(EVAULT_TOKEN=$token python3 "$WORK/push.py" "$SERVER_URL" "$WORK/pushes" "$clients")
  stop_server
}
declare -A B_BASE B_CUR
for c in $CLIENTS; do
  B_BASE[$c]="" B_CUR[$c]=""
  for rep in $(seq "$REPS"); do
    note "b. $PUSHES single-file pushes over HTTP, $c client(s), repetition $rep/$REPS"
    if [ $((rep % 2)) = 1 ]; then
      http_once "$BASELINE_BIN" "$c"; B_BASE[$c]+=" $RESULT"; http_once "$EVAULT_BIN" "$c"; B_CUR[$c]+=" $RESULT"
    else
      http_once "$EVAULT_BIN" "$c"; B_CUR[$c]+=" $RESULT"; http_once "$BASELINE_BIN" "$c"; B_BASE[$c]+=" $RESULT"
    fi
  done
done
CHECKPOINTS_B=$("$EVAULT_BIN" --data-dir "$WORK/vb" log checkpoint --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')

# --- c. proofs against log size (current binary) --------------------------------------------
V=$WORK/vc
quiet "$EVAULT_BIN" --data-dir "$V" init
log_size() { "$EVAULT_BIN" --data-dir "$V" log checkpoint --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])'; }
# The id of the first record whose ingestion entry is at or after index $1 (a push logs its
# blobs, then its records, so the search may skip a push's worth of blob entries).
record_near() {
  local start=$1 id=
  for _ in $(seq 20); do
    id=$("$EVAULT_BIN" --data-dir "$V" log entries --start "$start" --limit 1000 | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(json.loads(line)["entry"])
    if e["type"] == "record.ingested":
        print(e["subject"].split("/", 1)[1]); break')
    [ -z "$id" ] || break
    start=$((start + 1000))
  done
  [ -n "$id" ] || { echo "no record entry after index $1" >&2; exit 1; }
  echo "$id"
}
time_median() { # reps, command... -> median seconds
  local reps=$1; shift
  local ts=() t0 t1
  for _ in $(seq "$reps"); do
    t0=$EPOCHREALTIME
    "$@" >/dev/null 2>"$WORK/cmd.err" || { echo "failed: $*" >&2; cat "$WORK/cmd.err" >&2; exit 1; }
    t1=$EPOCHREALTIME
    ts+=("$(calc "$t1 - $t0")")
  done
  median "${ts[@]}"
}
hashes() { "$@" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["hashes"]))'; }
ms() { calc "f'{$1 * 1000:.1f}'"; }

GROW_ROWS="" PROOF_ROWS="" chunk_no=0
for target in $SIZES; do
  while :; do
    have=$(log_size)
    missing=$(( (target - have + 1) / 2 ))
    [ "$missing" -gt 0 ] || break
    n=$(( missing < CHUNK ? missing : CHUNK ))
    chunk_no=$((chunk_no + 1))
    note "c. growing the log from $have entries: one push of $n records"
    rm -rf "$WORK/chunk"
    gen "$WORK/chunk" "$n" "grow$chunk_no"
    sync
    t0=$EPOCHREALTIME
    quiet "$EVAULT_BIN" --data-dir "$V" push "$WORK/chunk" --blueprint grow --version "$chunk_no" --git-sha $SHA
    t1=$EPOCHREALTIME
    secs=$(calc "$t1 - $t0")
    GROW_ROWS+="| $have | $n | $(calc "f'{$secs:.2f}'") s | $(calc "f'{$n / $secs:.0f}'") |"$'\n'
  done
  rm -rf "$WORK/chunk"
  n=$(log_size)
  note "c. timing proofs at $n entries"
  floor=$(time_median "$PROOF_REPS" "$EVAULT_BIN" --data-dir "$V" log key)
  cells=""
  for at in 0 $((n / 2)) $((n - 8)); do
    id=$(record_near "$at")
    idx=$("$EVAULT_BIN" --data-dir "$V" log prove "$id" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_index"])')
    t=$(time_median "$PROOF_REPS" "$EVAULT_BIN" --data-dir "$V" log prove "$id" --json)
    h=$(hashes "$EVAULT_BIN" --data-dir "$V" log prove "$id")
    cells+=" $(ms "$t") ms ($h; #$idx) |"
  done
  for from in $((n / 3)) $((n - 3)); do
    t=$(time_median "$PROOF_REPS" "$EVAULT_BIN" --data-dir "$V" log consistency --from "$from" --json)
    h=$(hashes "$EVAULT_BIN" --data-dir "$V" log consistency --from "$from")
    cells+=" $(ms "$t") ms ($h) |"
  done
  t=$(time_median "$VERIFY_REPS" "$EVAULT_BIN" --data-dir "$V" log verify --no-blobs)
  PROOF_ROWS+="| $n | $(ms "$floor") ms |$cells $(calc "f'{$t:.2f}'") s | $(calc "f'{$n / $t:.0f}'") |"$'\n'
done

# --- report ---------------------------------------------------------------------------------
rate() { calc "f'{$1 / $2:.0f}'"; }
overhead() { calc "f'{($1 - $2) / $1 * 100:+.1f} %'"; } # baseline rate, current rate
runs() { local out=""; for s in "$@"; do out+="$(calc "f'{$s:.2f}'") "; done; echo "${out% }"; }

a_base=$(median "${A_BASE[@]}") a_cur=$(median "${A_CUR[@]}")
ra_base=$(rate "$RECORDS" "$a_base") ra_cur=$(rate "$RECORDS" "$a_cur")

cat <<EOF
## Tamper-evident log: \`bench/log.sh\`

Requirement (issue 5): appending the log costs pushes no more than 20% of their throughput;
proofs are \`O(log n)\`. Each push appends, in its own transaction, one entry per new blob and
per new record (its state read back from the index, canonical JSON, perfect-subtree hashes into
\`log_nodes\`) and signs one Ed25519 checkpoint. Baseline: $REV, the last commit before the log,
same machine, same workloads, runs interleaved; medians of $REPS runs.

### One push of many records (embedded)

$RECORDS distinct CycloneDX SBOMs (1 to 3 components each, $(( $(du -sb "$WORK/records" | cut -f1) / 1024 )) KiB) pushed as one directory into a
fresh vault. With the log that push appends $SIZE_A entries under one checkpoint.

| binary | median wall time | records/s | runs (s) |
|---|---|---|---|
| $BASE_LABEL | $(calc "f'{$a_base:.2f}'") s | $ra_base | $(runs "${A_BASE[@]}") |
| $CUR_LABEL | $(calc "f'{$a_cur:.2f}'") s | $ra_cur | $(runs "${A_CUR[@]}") |

Overhead of the log: **$(overhead "$ra_base" "$ra_cur")** of records/s.

### Many small pushes over HTTP

$PUSHES single-file pushes (a distinct tiny SBOM each, so a new blob and a new record) to
\`evault serve\` on 127.0.0.1, from keep-alive clients splitting the files between them; each
push is one transaction and, with the log, one signed checkpoint (the current binary's vault
ends at $CHECKPOINTS_B entries).

| concurrent clients | $BASE_LABEL pushes/s | $CUR_LABEL pushes/s | overhead | runs, baseline / current (s) |
|---|---|---|---|---|
EOF
for c in $CLIENTS; do
  # shellcheck disable=SC2086
  b=$(median ${B_BASE[$c]}) k=$(median ${B_CUR[$c]})
  rb=$(rate "$PUSHES" "$b") rk=$(rate "$PUSHES" "$k")
  # shellcheck disable=SC2086
  echo "| $c | $rb | $rk | **$(overhead "$rb" "$rk")** | $(runs ${B_BASE[$c]}) / $(runs ${B_CUR[$c]}) |"
done
cat <<EOF

Overhead = (baseline − current) / baseline throughput; negative means the current binary was
faster (within noise).

### Proofs against log size (current binary)

One vault grown by pushes of up to $CHUNK records (2 entries each):

| log entries before | records pushed | wall time | records/s |
|---|---|---|---|
$GROW_ROWS
Median of $PROOF_REPS runs of each command, whole process (start, vault open, proof, checks
against the signed checkpoint, JSON output); \`log key\` does none of the proof work and is the
floor. In brackets: the number of hashes in the proof (and, for \`prove\`, the entry's index).
\`log verify --no-blobs\` recomputes the whole tree and compares every object with its newest
entry: \`O(n)\` by design (median of $VERIFY_REPS).

| log entries | \`log key\` (floor) | \`prove\` entry near start | near middle | near end | \`consistency --from n/3\` | \`--from n-3\` | \`verify --no-blobs\` | entries/s verified |
|---|---|---|---|---|---|---|---|---|
$PROOF_ROWS
EOF
