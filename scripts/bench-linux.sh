#!/usr/bin/env bash
# Speed and memory of hangscope against drgn on real hung Linux guests.
#
#   scripts/bench-linux.sh [GUEST_DIR...]   (default: $HANGSCOPE_LINUX_GUESTS)
#
# A GUEST_DIR is what scripts/linux-guest.sh makes (dumps/, kernel/ with the
# debug vmlinux, venv/ with drgn); HANGSCOPE_LINUX_GUEST_MIB=4096
# scripts/linux-guest.sh 6.1 makes the 4 GiB one. For each ELF and
# kdump-zlib dump, with a warm page cache, it measures hangscope's info,
# ps, threads and dmesg with the kernel's BTF read from the dump (symbol
# cache cold, then warm), `threads` with `-y vmlinux` (DWARF, warm),
# `analyze` and `stacks` (the hang walk: every task's waits and stack,
# BTF cache warm), drgn's task list (pid, tgid, comm, state, CPU of every
# task) with the same vmlinux, and drgn's ground-truth walk of the hang
# (the guest's drgn_groundtruth.py: every task's stack, the lock each
# blocked task waits on from its frames' variables, owners, waiters, the
# log). Wall time and peak RSS from GNU time, best of $RUNS (3).
#
# HANGSCOPE_BENCH_4G=1 also makes the 4 GiB hung 6.1 guest on demand
# (HANGSCOPE_LINUX_GUEST_MIB=4096 scripts/linux-guest.sh 6.1 under
# `flock /work/libvirt.lock` when that lock exists; about 4 minutes, 4.3 GB
# of dumps), measures it with the others, then deletes its dumps (the
# benchmark makes them again next time) unless HANGSCOPE_BENCH_KEEP_4G=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${RUNS:-3}
DIRS=("$@")
[ ${#DIRS[@]} -gt 0 ] || IFS=: read -r -a DIRS <<<"${HANGSCOPE_LINUX_GUESTS:-}"
BIG=
if [ "${HANGSCOPE_BENCH_4G:-}" = 1 ]; then
  lock=(); [ -e /work/libvirt.lock ] && lock=(flock /work/libvirt.lock)
  BIG=$(HANGSCOPE_LINUX_GUEST_MIB=4096 "${lock[@]}" scripts/linux-guest.sh 6.1 | tail -1)
  [ -d "$BIG" ] || { echo "bench-linux: the 4 GiB guest was not made" >&2; exit 1; }
  DIRS+=("$BIG")
fi
[ ${#DIRS[@]} -gt 0 ] || { echo "bench-linux: give guest directories (scripts/linux-guest.sh)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >&2
cargo build --release -q -p hangscope
HS=${CARGO_TARGET_DIR:-$ROOT/target}/release/hangscope
WORK=$(mktemp -d)
drop_big() {
  [ -n "$BIG" ] && [ "${HANGSCOPE_BENCH_KEEP_4G:-}" != 1 ] && rm -f "$BIG"/dumps/hangguest.* "$BIG"/peers/truth-*.json
  rm -rf "$WORK"
}
trap drop_big EXIT
export XDG_CACHE_HOME=$WORK/cache
cat > "$WORK/ps.py" <<'PY'
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import task_cpu, task_state_to_char
for t in for_each_task(prog):
    print(int(t.pid), int(t.tgid), t.comm.string_().decode(), task_state_to_char(t), task_cpu(t))
PY

run_best() { # cold|warm CMD...: "seconds peak_kib" of the fastest run
  local mode=$1 best="" line; shift
  for _ in $(seq "$RUNS"); do
    [ "$mode" = cold ] && rm -rf "$XDG_CACHE_HOME"
    /usr/bin/time -o "$WORK/time.out" -f "%e %M" "$@" >/dev/null 2>/dev/null || true
    line=$(tail -1 "$WORK/time.out")
    if [ -z "$best" ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then best=$line; fi
  done
  echo "$best"
}

echo "| dump | size MiB | command | seconds | peak RSS MiB |"
echo "|---|---|---|---|---|"
for d in "${DIRS[@]}"; do
  v=$(ls "$d"/kernel/usr/lib/debug/boot/vmlinux-* 2>/dev/null | head -1 || true)
  for f in hangguest.elf hangguest.kdump-zlib; do
    dump=$d/dumps/$f
    [ -f "$dump" ] || continue
    cat "$dump" >/dev/null
    name="$(basename "$d") $f"
    mib=$(( $(stat -c %s "$dump") >> 20 ))
    row() { printf '| %s | %s | %s | %s | %s |\n' "$name" "$mib" "$1" "${2%% *}" "$(( ${2##* } / 1024 ))"; }
    row "hangscope info, cold BTF cache" "$(run_best cold "$HS" info "$dump")"
    "$HS" info "$dump" >/dev/null
    row "hangscope info" "$(run_best warm "$HS" info "$dump")"
    row "hangscope ps" "$(run_best warm "$HS" ps "$dump")"
    row "hangscope threads" "$(run_best warm "$HS" threads "$dump")"
    row "hangscope dmesg" "$(run_best warm "$HS" dmesg "$dump")"
    row "hangscope analyze" "$(run_best warm "$HS" analyze "$dump")"
    row "hangscope stacks" "$(run_best warm "$HS" stacks "$dump")"
    if [ -n "$v" ]; then
      "$HS" -y "$v" threads "$dump" >/dev/null 2>&1 || true
      row "hangscope threads -y vmlinux (warm)" "$(run_best warm "$HS" -y "$v" threads "$dump")"
      if [ -x "$d/venv/bin/drgn" ]; then
        arch=(); [ "$f" = hangguest.kdump-zlib ] && arch=(--architecture x86_64)
        row "drgn task list (vmlinux)" "$(run_best warm "$d/venv/bin/drgn" -q -c "$dump" "${arch[@]}" -s "$v" "$WORK/ps.py")"
        if [ -f "$d/drgn_groundtruth.py" ]; then
          ko=(); [ -f "$d/src/hangdemo.ko" ] && ko=(-s "$d/src/hangdemo.ko")
          row "drgn ground-truth walk (vmlinux)" "$(run_best warm "$d/venv/bin/drgn" -q -c "$dump" "${arch[@]}" -s "$v" "${ko[@]}" "$d/drgn_groundtruth.py" "$WORK/truth.json")"
        fi
      fi
    fi
  done
done
