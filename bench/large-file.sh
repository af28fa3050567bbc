#!/usr/bin/env bash
# Peak memory and throughput of pushing and getting one large file, in a release build.
#
#   bench/large-file.sh            # 1 GiB, both inputs
#   SIZE_MIB=256 bench/large-file.sh
#
# Two inputs: random bytes (incompressible; format detection gives up after 1 MiB) and one
# large CycloneDX-shaped JSON document (compressible; format detection scans all of it on a
# second thread). Prints a Markdown table for docs/performance.md. The target is a peak RSS under
# 100 MiB for every row, whatever the file size.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
cargo build --release --locked -p evault >/dev/null 2>&1
BIN=$PWD/target/release/evault
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evault-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SHA=0123456789abcdef0123456789abcdef01234567

head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/random.bin"
python3 - "$WORK/sbom.json" "$SIZE_MIB" <<'PY'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
target = mib * 1024 * 1024
with open(path, "w") as f:
    f.write('{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[')
    n, size = 0, 0
    while True:
        c = ('{"type":"library","name":"pkg-%d","version":"1.%d.%d","purl":"pkg:npm/pkg-%d@1.%d.%d",'
             '"licenses":[{"license":{"id":"MIT"}}],"hashes":[{"alg":"SHA-256","content":"%064x"}]}'
             % (n, n % 97, n % 13, n, n % 97, n % 13, n * 2654435761 % (1 << 256)))
        if size + len(c) + 3 > target:
            break
        f.write(("," if n else "") + c)
        size += len(c) + 1
        n += 1
    f.write("]}")
PY

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>&1
  local out; out=$(tail -1 "$WORK/time")
  local secs=${out% *} kib=${out#* }
  local mib_s; mib_s=$(python3 -c "print(f'{$SIZE_MIB/max($secs,0.001):.0f}')")
  printf '| %s | %s MiB | %.2f s | %s MiB/s | %s MiB |\n' "$label" "$SIZE_MIB" "$secs" "$mib_s" "$((kib / 1024))"
}

echo "| operation | size | wall time | throughput | peak RSS |"
echo "|---|---|---|---|---|"
for input in random.bin sbom.json; do
  V="$WORK/vault-$input"
  "$BIN" --data-dir "$V" init >/dev/null
  measure "push $input" "$BIN" --data-dir "$V" push "$WORK/$input" --blueprint bench --version 1 --git-sha $SHA
  DIGEST=$("$BIN" --data-dir "$V" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["digest"])')
  measure "get $input (stdout, verify + copy)" "$BIN" --data-dir "$V" get "$DIGEST"
  measure "get $input -o FILE" "$BIN" --data-dir "$V" get "$DIGEST" -o "$WORK/out"
  cmp -s "$WORK/out" "$WORK/$input" || { echo "round trip of $input differs" >&2; exit 1; }
  rm -f "$WORK/out"
  STORED=$(du -k "$V/blobs" | tail -1 | cut -f1)
  echo "|   stored size of $input | | | | $((STORED / 1024)) MiB on disk |"
done
