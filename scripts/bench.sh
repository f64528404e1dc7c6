#!/usr/bin/env bash
# Speed and memory of hangscope against Volatility 3 on lab images.
#
#   scripts/bench.sh [SIZES...]        (default: 1G 4G 16G)
#
# For each size it builds a temp-flood ELF image (Windows 10 19041) into
# $BENCH_DIR (default target/bench), then measures, with a warm page cache:
#   - hangscope info+ps+threads (one process each) and analyze, with the
#     symbol cache warm and cold (cache dir emptied first); stacks (every
#     thread unwound) and running;
#   - analyze of one dump against analyze A B of two dumps of one boot
#     (the lab's `slow` series; issue 16);
#   - Volatility 3's pslist + threads.
# Wall time and peak RSS come from GNU time; each figure is the best of
# $RUNS runs (default 3). Results go to stdout as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1G 4G 16G)
RUNS=${RUNS:-3}
BUILD=${BENCH_BUILD:-win10-19041}
DIR=${BENCH_DIR:-$ROOT/target/bench}
SYMS=${HANGSCOPE_SYMBOLS:-$ROOT/../shared/symbols}
VENV=${HANGSCOPE_VENV:-$ROOT/target/venv}
mkdir -p "$DIR"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >&2
cargo build --release -q -p hangscope -p hangscope-lab
HS=$ROOT/target/release/hangscope
LAB=$ROOT/target/release/hangscope-lab
export XDG_CACHE_HOME=$DIR/cache

# best_of CMD...: prints "seconds peak_kib" of the fastest run.
best_of() {
  local best="" line
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -o "$DIR/time.out" -f "%e %M" "$@" >/dev/null 2>/dev/null || true
    line=$(tail -1 "$DIR/time.out")
    if [ -z "$best" ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then best=$line; fi
  done
  echo "$best"
}
cold_of() { # like best_of, but the symbol cache is emptied before each run
  local best="" line
  for _ in $(seq "$RUNS"); do
    rm -rf "$XDG_CACHE_HOME/hangscope"
    /usr/bin/time -o "$DIR/time.out" -f "%e %M" "$@" >/dev/null 2>/dev/null || true
    line=$(tail -1 "$DIR/time.out")
    if [ -z "$best" ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then best=$line; fi
  done
  echo "$best"
}

echo "| image | command | seconds | peak RSS MiB |"
echo "|---|---|---|---|"
for size in "${SIZES[@]}"; do
  img=$DIR/temp-flood-$size.elf
  if [ ! -f "$img" ]; then
    start=$(date +%s.%N)
    "$LAB" build --scenario temp-flood --build "$BUILD" --format elf --ram "$size" \
      --symbols "$SYMS" -o "$img" >/dev/null
    end=$(date +%s.%N)
    printf '| %s | hangscope-lab build (write) | %.2f | |\n' "$size" "$(echo "$end - $start" | bc)"
  fi
  cat "$img" >/dev/null  # warm the page cache
  row() { printf '| %s | %s | %s | %s |\n' "$size" "$1" "${2%% *}" "$(( ${2##* } / 1024 ))"; }
  "$HS" -y "$SYMS" info "$img" >/dev/null  # warm the symbol cache
  row "hangscope info" "$(best_of "$HS" -y "$SYMS" info "$img")"
  row "hangscope ps" "$(best_of "$HS" -y "$SYMS" ps "$img")"
  row "hangscope threads" "$(best_of "$HS" -y "$SYMS" threads "$img")"
  row "hangscope analyze (warm symbol cache)" "$(best_of "$HS" -y "$SYMS" analyze --json "$img")"
  row "hangscope analyze (cold symbol cache)" "$(cold_of "$HS" -y "$SYMS" analyze --json "$img")"
  row "hangscope stacks (every thread)" "$(best_of "$HS" -y "$SYMS" stacks --json "$img")"
  row "hangscope running" "$(best_of "$HS" -y "$SYMS" running --json "$img")"
  # Issue 16: two dumps of one boot (the lab's `slow` series of the seed
  # case, moments 0 and 1) compared should cost about two analyzes.
  for m in 0 1; do
    s_img=$DIR/series-slow-$size-$m.elf
    [ -f "$s_img" ] || "$LAB" build --series slow --moment "$m" --build "$BUILD" --format elf \
      --ram "$size" --symbols "$SYMS" -o "$s_img" >/dev/null
    cat "$s_img" >/dev/null
  done
  row "hangscope analyze (one dump of the series)" "$(best_of "$HS" -y "$SYMS" analyze --json "$DIR/series-slow-$size-0.elf")"
  row "hangscope analyze A B (series of two)" "$(best_of "$HS" -y "$SYMS" analyze --json "$DIR/series-slow-$size-0.elf" "$DIR/series-slow-$size-1.elf")"
  if [ -x "$VENV/bin/vol" ]; then
    vol() { "$VENV/bin/vol" -q -r none --offline -s "$SYMS" -f "$img" "$@"; }
    vol windows.info >/dev/null 2>&1 || true  # let Volatility fill its own cache
    row "vol windows.pslist" "$(best_of "$VENV/bin/vol" -q -r none --offline -s "$SYMS" -f "$img" windows.pslist)"
    row "vol windows.threads" "$(best_of "$VENV/bin/vol" -q -r none --offline -s "$SYMS" -f "$img" windows.threads)"
  fi
done
