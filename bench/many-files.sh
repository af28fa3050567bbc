#!/usr/bin/env bash
# Throughput of pushing a bundle of many small files (the common CI shape), in a release build.
#
#   bench/many-files.sh               # 5000 files, as a directory and as a .tar.zst
#   FILES=10000 bench/many-files.sh
#
# Prints a Markdown table for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-5000}
cargo build --release --locked -p evault >/dev/null 2>&1
BIN=$PWD/target/release/evault
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evault-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SHA=0123456789abcdef0123456789abcdef01234567

python3 - "$WORK/bundle" "$FILES" <<'PY'
import json, os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"svc-{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    kind = i % 3
    if kind == 0:
        doc = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
               "components": [{"type": "library", "name": f"pkg-{i}-{j}", "version": f"1.{j}.0",
                               "purl": f"pkg:npm/pkg-{i}-{j}@1.{j}.0"} for j in range(12)]}
        name = f"sbom-{i}.json"
    elif kind == 1:
        doc = {"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
               "runs": [{"tool": {"driver": {"name": "grype"}},
                         "results": [{"ruleId": f"CVE-2024-{i:05d}", "level": "error",
                                      "message": {"text": f"finding {i}"}}]}]}
        name = f"scan-{i}.sarif"
    else:
        with open(os.path.join(d, f"plan-{i}.md"), "w") as f:
            f.write(f"# Rollback Plan {i}\n\n## Trigger Conditions\n- error rate > 5%\n")
        continue
    with open(os.path.join(d, name), "w") as f:
        json.dump(doc, f)
PY
tar -C "$WORK/bundle" -cf - . | zstd -q -o "$WORK/bundle.tar.zst"
BYTES=$(du -sb "$WORK/bundle" | cut -f1)

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>&1
  local out; out=$(tail -1 "$WORK/time")
  local secs=${out% *} kib=${out#* }
  local rate; rate=$(python3 -c "print(f'{$FILES/max($secs,0.001):.0f}')")
  printf '| %s | %s files, %s KiB | %.2f s | %s files/s | %s MiB |\n' "$label" "$FILES" "$((BYTES / 1024))" "$secs" "$rate" "$((kib / 1024))"
}

echo "| operation | input | wall time | throughput | peak RSS |"
echo "|---|---|---|---|---|"
"$BIN" --data-dir "$WORK/v1" init >/dev/null
measure "push directory (new)" "$BIN" --data-dir "$WORK/v1" push "$WORK/bundle" --blueprint bench --version 1 --git-sha $SHA
measure "push directory again (all present)" "$BIN" --data-dir "$WORK/v1" push "$WORK/bundle" --blueprint bench --version 1 --git-sha $SHA
"$BIN" --data-dir "$WORK/v2" init >/dev/null
measure "push .tar.zst (new)" "$BIN" --data-dir "$WORK/v2" push "$WORK/bundle.tar.zst" --blueprint bench --version 1 --git-sha $SHA
measure "ls --limit 100000 --json" "$BIN" --data-dir "$WORK/v2" ls --limit 100000 --json
measure "fsck" "$BIN" --data-dir "$WORK/v2" fsck
