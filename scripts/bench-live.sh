#!/usr/bin/env bash
# Live triage against capture-then-analyze, on TCG guests of several sizes.
#
#   scripts/bench-live.sh [SIZES...]        (default: 1G 4G 16G)
#
# For each size it builds a temp-flood raw image (Windows 10 19041) into
# $BENCH_DIR (default target/bench-live) and starts QEMU (TCG) with that
# image as its RAM (memory-backend-file, share=off) and a firmware that only
# halts, so the guest runs but its RAM is never touched. Then, page cache
# and symbol cache warm:
#   - `hangscope live SOCKET analyze --json` (pause only to copy the pages
#     read), and with --hold (paused for the whole analysis): wall time from
#     GNU time, pause time from hangscope's own cost line; best of $RUNS;
#   - `hangscope capture` then `hangscope analyze` of the ELF: wall time of
#     each, and the pause, which is the dump's duration (QEMU stops the vCPUs
#     while it writes a memory-only dump). Once (the ELF is as large as RAM
#     and is deleted at once).
# Guests larger than $BENCH_LAB_MAX (default 3G) hold that size's image and
# untouched RAM above it. Images are deleted after their size unless
# BENCH_KEEP=1. BENCH_PROFILE=debug uses the dev build. A capture whose
# dump would leave less than $BENCH_DISK_RESERVE (default 15G) free on the
# disk is measured whole with its file flushed and freed as it is written
# (sample_capture), and `analyze` is not run on it.
# Results go to stdout as a Markdown table. Each guest is killed at the end
# of its size, and the run fails if a guest was left paused.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1G 4G 16G)
RUNS=${RUNS:-3}
BUILD=${BENCH_BUILD:-win10-19041}
DIR=${BENCH_DIR:-$ROOT/target/bench-live}
SYMS=${HANGSCOPE_SYMBOLS:-$ROOT/../shared/symbols}
PROFILE=${BENCH_PROFILE:-release}
# QEMU's pc machine keeps at most 3 GiB of RAM below 4 GiB and maps the
# rest above 4 GiB, where a lab image (whose physical addresses are its file
# offsets) does not expect it: larger guests hold a 3 GiB image.
LAB_MAX=${BENCH_LAB_MAX:-3G}
# Disk left to others: a capture that would leave less is measured with
# its file freed as it goes (sample_capture).
RESERVE=$(numfmt --from=iec "${BENCH_DISK_RESERVE:-15G}")
mkdir -p "$DIR"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >&2
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p hangscope -p hangscope-lab
else
  cargo build -q -p hangscope -p hangscope-lab
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
HS=$TARGET/$PROFILE/hangscope
LAB=$TARGET/$PROFILE/hangscope-lab
export XDG_CACHE_HOME=$DIR/cache

# A 64 KiB firmware: the reset vector is `cli; hlt; jmp hlt`.
python3 - "$DIR/halt.bios" <<'EOF'
import sys
b = bytearray(b"\xf4" * 65536)
b[0xFFF0:0xFFF4] = b"\xfa\xf4\xeb\xfd"
open(sys.argv[1], "wb").write(b)
EOF

QEMU_PID=""
cleanup() { [ -z "$QEMU_PID" ] || kill "$QEMU_PID" 2>/dev/null || true; rm -rf "$DIR/capture"; }
trap cleanup EXIT

qmp_status() { # the guest's run state, through QMP
  python3 - "$1" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
f.readline()
for c in ("qmp_capabilities", "query-status"):
    f.write(json.dumps({"execute": c}) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r: break
print(r.get("return", {}).get("status", "?"))
EOF
}

# best_live FLAGS...: "wall_s pause_ms" of the run with the shortest pause.
best_live() {
  local best="" wall pause
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -o "$DIR/time.out" -f "%e" "$HS" -y "$SYMS" live "$SOCK" "$@" analyze --json \
      >/dev/null 2>"$DIR/live.err" || true
    wall=$(tail -1 "$DIR/time.out")
    pause=$(sed -n 's/.*guest paused \([0-9.]*\) ms.*/\1/p' "$DIR/live.err" | tail -1)
    [ -n "$pause" ] || { cat "$DIR/live.err" >&2; pause=NaN; }
    if [ -z "$best" ] || awk -v a="$pause" -v b="${best##* }" 'BEGIN{exit !(a<b)}'; then best="$wall $pause"; fi
  done
  echo "$best"
}

# sample_capture SIZE: the capture of a guest whose dump the disk cannot
# hold with $RESERVE bytes to spare, measured whole all the same: every
# 2 s the part of the dump written so far (NAME.partial until done) is
# flushed to the disk (`sync FILE`, so the disk's real rate is paid) and
# then freed (`fallocate --punch-hole`), so the file holds a few seconds'
# writes at most. The capture ends normally and its manifest gives the
# pause (the dump's duration); the wall time is the capture command's.
# The flushes make it slightly pessimistic (the disk's discards are paid
# too). The caller kills the guest after; the ELF is deleted.
sample_capture() {
  local size=$1 t0 elf cur pid last=0 rate
  t0=$(date +%s.%N)
  "$HS" capture --qmp "$SOCK" -o "$DIR/capture" --no-progress >/dev/null 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    elf=$(ls "$DIR"/capture/*.partial 2>/dev/null | head -1 || true)
    [ -n "$elf" ] || continue
    cur=$(stat -c %s "$elf" 2>/dev/null || echo 0)
    sync "$elf" 2>/dev/null || true
    fallocate --punch-hole --offset 0 --length "$cur" "$elf" 2>/dev/null || true
    last=$cur
  done
  wait "$pid" || { echo "| $size | \`capture\` | failed | |"; return; }
  local wall; wall=$(echo "$(date +%s.%N) - $t0" | bc)
  local pause; pause=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['dumps'][0]['duration_ms'])" \
    "$DIR/capture/manifest.json")
  rate=$(echo "$(numfmt --from=iec "$size") / $wall / 1048576" | bc)
  printf '| %s | `capture` (the dump freed behind the writer as it goes; %s MiB/s) | %.1f | %s |\n' \
    "$size" "$rate" "$wall" "$pause"
}

echo "| guest RAM | path | wall s | guest paused ms |"
echo "|---|---|---|---|"
for size in "${SIZES[@]}"; do
  img=$DIR/temp-flood-$size.raw
  if [ ! -f "$img" ]; then
    # Up to $LAB_MAX the lab writes the whole image; a larger guest gets the
    # $LAB_MAX image followed by RAM nothing has touched (a sparse tail):
    # the analysis reads the same pages, and the disk holds a few GiB, not
    # the guest's size (the capture's ELF needs that much already).
    bytes=$(numfmt --from=iec "$size"); max=$(numfmt --from=iec "$LAB_MAX")
    lab_size=$size; [ "$bytes" -le "$max" ] || lab_size=$LAB_MAX
    "$LAB" build --scenario temp-flood --build "$BUILD" --format raw --ram "$lab_size" \
      --symbols "$SYMS" -o "$img" >/dev/null
    truncate -s "$size" "$img"
  fi
  cat "$img" >/dev/null  # warm the page cache (the sparse tail costs nothing)
  SOCK=$DIR/qmp-$size.sock
  rm -f "$SOCK"
  qemu-system-x86_64 -accel tcg -machine pc -m "$size" -smp 2 -display none -nodefaults \
    -no-user-config -bios "$DIR/halt.bios" \
    -object "memory-backend-file,id=ram0,size=$size,mem-path=$img,share=off" \
    -machine memory-backend=ram0 -qmp "unix:$SOCK,server=on,wait=off" &
  QEMU_PID=$!
  for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
  "$HS" -y "$SYMS" live "$SOCK" analyze --json >/dev/null 2>&1 || true  # warm the symbol cache
  r=$(best_live); printf '| %s | `live analyze` (pause to copy) | %s | %s |\n' "$size" "${r% *}" "${r#* }"
  r=$(best_live --hold); printf '| %s | `live --hold analyze` | %s | %s |\n' "$size" "${r% *}" "${r#* }"
  rm -rf "$DIR/capture"
  free=$(df --output=avail -B1 "$DIR" | tail -1)
  if [ $(( free - $(numfmt --from=iec "$size") )) -lt "$RESERVE" ]; then
    sample_capture "$size"
    kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=""
    rm -rf "$DIR/capture"
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -f "$img" "$img.truth.json"
    continue
  fi
  /usr/bin/time -o "$DIR/time.out" -f "%e" "$HS" capture --qmp "$SOCK" -o "$DIR/capture" \
    --no-progress >/dev/null 2>&1
  cap_wall=$(tail -1 "$DIR/time.out")
  cap_pause=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['dumps'][0]['duration_ms'])" \
    "$DIR/capture/manifest.json")
  elf=$(ls "$DIR"/capture/*.elf)
  /usr/bin/time -o "$DIR/time.out" -f "%e" "$HS" -y "$SYMS" analyze --json "$elf" >/dev/null 2>&1 || true
  an_wall=$(tail -1 "$DIR/time.out")
  printf '| %s | `capture` + `analyze` | %s + %s | %s |\n' "$size" "$cap_wall" "$an_wall" "$cap_pause"
  rm -rf "$DIR/capture"
  st=$(qmp_status "$SOCK")
  [ "$st" = running ] || { echo "the $size guest was left $st" >&2; exit 1; }
  kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=""
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -f "$img" "$img.truth.json"
done
