#!/usr/bin/env bash
# Run every fuzz target (each crate's fuzz/ directory, its own cargo-fuzz
# workspace) for a while, and print a Markdown table of what each did.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
#
# Each target starts from its checked-in seeds (fuzz/seeds/TARGET, small
# and minimised) and writes what it finds to a temporary corpus, so the
# repository never grows. A crash, a hang (-timeout) or an out-of-memory
# (-rss_limit_mb) fails the script, with the reproducer under
# target/fuzz/artifacts/. CI runs it briefly as a smoke test
# (FUZZ_SMOKE=1 in scripts/test.sh); longer runs are for people.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${1:-60}
shift || true
WANT=("$@")
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  echo "fuzz: no $TOOLCHAIN toolchain (cargo fuzz needs one for its sanitizer flags); skipped" >&2
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo install cargo-fuzz" >&2
  cargo install -q --locked cargo-fuzz >&2
fi
OUT=$ROOT/target/fuzz
mkdir -p "$OUT/artifacts"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "| crate | target | seconds | executions | exec/s | coverage (cov) | features (ft) |"
echo "|---|---|---|---|---|---|---|"
failed=0
for dir in crates/*/fuzz; do
  crate=$(basename "$(dirname "$dir")")
  for t in $(cd "$dir" && cargo "+$TOOLCHAIN" fuzz list 2>/dev/null); do
    if [ ${#WANT[@]} -gt 0 ] && [[ ! " ${WANT[*]} " =~ " $t " ]]; then continue; fi
    corpus=$WORK/$t
    mkdir -p "$corpus"
    seeds=()
    [ -d "$dir/seeds/$t" ] && seeds=("$ROOT/$dir/seeds/$t")
    log=$OUT/$t.log
    # -s none: no sanitizer runtime to fetch; Rust's own checks (bounds,
    # overflow with debug assertions) are what the targets exercise.
    if (cd "$dir" && cargo "+$TOOLCHAIN" fuzz run -s none --debug-assertions \
          --target-dir "$OUT/build" "$t" "$corpus" "${seeds[@]}" -- \
          -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
          -artifact_prefix="$OUT/artifacts/$t-") >"$log" 2>&1; then
      :
    else
      failed=1
      echo "fuzz: $crate/$t FAILED; see $log" >&2
      tail -20 "$log" >&2
    fi
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | awk '{print $2}')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    rate=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    echo "| $crate | $t | $SECS | ${runs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} |"
  done
done
exit $failed
