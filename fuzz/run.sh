#!/usr/bin/env bash
# A short fuzz run of every parser target (cargo fuzz, libFuzzer).
#
#   fuzz/run.sh            # 30 seconds per target
#   SECONDS_PER_TARGET=600 fuzz/run.sh detect
#
# cargo fuzz needs nightly features; on a stable toolchain RUSTC_BOOTSTRAP=1 enables them.
# Crashes are written to fuzz/artifacts/<target>/ and make this script fail.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-30}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(detect json_probe xml_probe documents extract)
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
  cargo fuzz run "$t" -- -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=1024
done
