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
#     (the lab's `slow` series; issue 16): GNU time's figures, then the
#     wall clock in ms (best of $SERIES_RUNS, default 25, taken in turn: GNU time's 10 ms
#     grain is too coarse for these runs), the ratio of A B to A, and,
#     with both files dropped from the page cache (dd iflag=nocache), how
#     much of each file `analyze A B` reads (fincore: its pages in the
#     cache after the run), to show it is not a scan;
#   - analyze of the push-lock scenario with a quarter of RAM resident in
#     kernel space (issue 15: the push-lock word scan reads every mapped
#     kernel page), warm and with the page cache dropped (root);
#   - Volatility 3's pslist + threads.
# Wall time and peak RSS come from GNU time; each figure is the best of
# $RUNS runs (default 3). Results go to stdout as a Markdown table.
# BENCH_ONLY=series measures only the series rows (and builds only their
# two images).
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
ONLY=${BENCH_ONLY:-}
SERIES_RUNS=${SERIES_RUNS:-25}
cargo build --release -q -p hangscope -p hangscope-lab
HS=${CARGO_TARGET_DIR:-$ROOT/target}/release/hangscope
LAB=${CARGO_TARGET_DIR:-$ROOT/target}/release/hangscope-lab
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

# ms CMD...: one run's wall clock in ms.
ms() {
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
min() { if [ -z "$1" ] || [ "$2" -lt "$1" ]; then echo "$2"; else echo "$1"; fi; }
# MiB of FILE in the page cache.
cached_mib() { fincore --bytes --noheadings -o RES "$1" | awk '{printf "%.1f", $1 / 1048576}'; }
command -v fincore >/dev/null || apt-get install -y -qq util-linux >&2
# The read-around of the disk FILE is on (its queue's read_ahead_kb).
read_ahead_kb() {
  local d; d=/sys/class/block/$(basename "$(df --output=source "$1" | tail -1)")
  [ -f "$d/queue/read_ahead_kb" ] || d=$(readlink -f "$d")/..
  cat "$d/queue/read_ahead_kb" 2>/dev/null || echo '?'
}

echo "| image | command | seconds | peak RSS MiB |"
echo "|---|---|---|---|"
for size in "${SIZES[@]}"; do
  img=$DIR/temp-flood-$size.elf
  row() { printf '| %s | %s | %s | %s |\n' "$size" "$1" "${2%% *}" "$(( ${2##* } / 1024 ))"; }
  if [ "$ONLY" != series ]; then
  if [ ! -f "$img" ]; then
    start=$(date +%s.%N)
    "$LAB" build --scenario temp-flood --build "$BUILD" --format elf --ram "$size" \
      --symbols "$SYMS" -o "$img" >/dev/null
    end=$(date +%s.%N)
    printf '| %s | hangscope-lab build (write) | %.2f | |\n' "$size" "$(echo "$end - $start" | bc)"
  fi
  cat "$img" >/dev/null  # warm the page cache
  "$HS" -y "$SYMS" info "$img" >/dev/null  # warm the symbol cache
  row "hangscope info" "$(best_of "$HS" -y "$SYMS" info "$img")"
  row "hangscope ps" "$(best_of "$HS" -y "$SYMS" ps "$img")"
  row "hangscope threads" "$(best_of "$HS" -y "$SYMS" threads "$img")"
  row "hangscope analyze (warm symbol cache)" "$(best_of "$HS" -y "$SYMS" analyze --json "$img")"
  row "hangscope analyze (cold symbol cache)" "$(cold_of "$HS" -y "$SYMS" analyze --json "$img")"
  row "hangscope stacks (every thread)" "$(best_of "$HS" -y "$SYMS" stacks --json "$img")"
  row "hangscope running" "$(best_of "$HS" -y "$SYMS" running --json "$img")"
  fi
  # Issue 16: two dumps of one boot (the lab's `slow` series of the seed
  # case, moments 0 and 1) compared should cost about two analyzes.
  for m in 0 1; do
    s_img=$DIR/series-slow-$size-$m.elf
    [ -f "$s_img" ] || "$LAB" build --series slow --moment "$m" --build "$BUILD" --format elf \
      --ram "$size" --symbols "$SYMS" -o "$s_img" >/dev/null
    cat "$s_img" >/dev/null
  done
  A=$DIR/series-slow-$size-0.elf; B=$DIR/series-slow-$size-1.elf
  "$HS" -y "$SYMS" analyze --json "$A" "$B" >/dev/null 2>&1 || true  # warm the symbol cache
  row "hangscope analyze (one dump of the series)" "$(best_of "$HS" -y "$SYMS" analyze --json "$A")"
  row "hangscope analyze A B (series of two)" "$(best_of "$HS" -y "$SYMS" analyze --json "$A" "$B")"
  # A, B and A B in turn, so that the machine's load weighs on each alike;
  # the fastest of each.
  ms_a=""; ms_b=""; ms_ab=""
  for _ in $(seq "$SERIES_RUNS"); do
    ms_a=$(min "$ms_a" "$(ms "$HS" -y "$SYMS" analyze --json "$A")")
    ms_b=$(min "$ms_b" "$(ms "$HS" -y "$SYMS" analyze --json "$B")")
    ms_ab=$(min "$ms_ab" "$(ms "$HS" -y "$SYMS" analyze --json "$A" "$B")")
  done
  printf '| %s | analyze A, ms (best of %s) | %s ms | |\n' "$size" "$SERIES_RUNS" "$ms_a"
  printf '| %s | analyze B, ms (best of %s) | %s ms | |\n' "$size" "$SERIES_RUNS" "$ms_b"
  printf '| %s | analyze A B, ms (best of %s) | %s ms | |\n' "$size" "$SERIES_RUNS" "$ms_ab"
  printf '| %s | analyze A B / analyze A | %s | |\n' "$size" "$(echo "scale=2; $ms_ab / $ms_a" | bc)"
  printf '| %s | analyze A B / (analyze A + analyze B) | %s | |\n' "$size" "$(echo "scale=2; $ms_ab / ($ms_a + $ms_b)" | bc)"
  # Not a scan: with the files out of the page cache, the major page
  # faults are the reads hangscope asks for, and what enters the cache is
  # those reads plus the kernel's read-around (read_ahead_kb of the disk).
  for files in "$A" "$A $B"; do
    for f in $files; do dd if="$f" iflag=nocache count=0 status=none; done
    # shellcheck disable=SC2086
    /usr/bin/time -o "$DIR/time.out" -f "%e %M %F" "$HS" -y "$SYMS" analyze --json $files >/dev/null 2>&1 || true
    read -r s kib maj < <(tail -1 "$DIR/time.out")
    n=$(echo "$files" | wc -w)
    printf '| %s | analyze of %s dump(s), out of the page cache: s, peak RSS MiB, major faults, MiB read in per file (of %s; read_ahead_kb %s) | %s | %s | %s faults; %s |\n' \
      "$size" "$n" "$(( $(stat -c %s "$A") / 1048576 ))" \
      "$(read_ahead_kb "$A")" \
      "$s" "$(( kib / 1024 ))" "$maj" "$(for f in $files; do printf '%s ' "$(cached_mib "$f")"; done)"
  done
  [ "$ONLY" != series ] || continue
  # Issue 15: the push-lock word scan reads every mapped kernel page. The
  # push-lock scenario with a quarter of RAM resident in kernel space
  # (machine.kernel_resident, mapped over filler like a real machine's
  # pool, cache and PFN database): analyze warm, then with the page cache
  # dropped (root only; skipped otherwise).
  bytes=$(numfmt --from=iec "$size")
  pl=$DIR/push-lock-$size.elf
  if [ ! -f "$pl" ]; then
    sed -e "s/^ram = .*/ram = $bytes\nkernel_resident = $(( bytes / 4 ))/" \
      crates/lab/scenarios/push-lock.toml >"$DIR/push-lock-$size.toml"
    "$LAB" build --scenario "$DIR/push-lock-$size.toml" --format elf --symbols "$SYMS" \
      -o "$pl" --no-progress >/dev/null
  fi
  cat "$pl" >/dev/null
  row "hangscope analyze, push-lock, 1/4 of RAM kernel-resident (warm)" "$(best_of "$HS" -y "$SYMS" analyze --json "$pl")"
  if [ -w /proc/sys/vm/drop_caches ]; then
    sync; echo 3 >/proc/sys/vm/drop_caches
    /usr/bin/time -o "$DIR/time.out" -f "%e %M" "$HS" -y "$SYMS" analyze --json "$pl" >/dev/null 2>&1 || true
    row "hangscope analyze, push-lock, 1/4 of RAM kernel-resident (page cache dropped)" "$(tail -1 "$DIR/time.out")"
  fi
  if [ -x "$VENV/bin/vol" ]; then
    vol() { "$VENV/bin/vol" -q -r none --offline -s "$SYMS" -f "$img" "$@"; }
    vol windows.info >/dev/null 2>&1 || true  # let Volatility fill its own cache
    row "vol windows.pslist" "$(best_of "$VENV/bin/vol" -q -r none --offline -s "$SYMS" -f "$img" windows.pslist)"
    row "vol windows.threads" "$(best_of "$VENV/bin/vol" -q -r none --offline -s "$SYMS" -f "$img" windows.threads)"
  fi
done
