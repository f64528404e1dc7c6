#!/bin/bash
# Real hung Linux guests for the test suite: runs the shared recipe
# (../shared/tools/linux-guest: a Debian kernel + busybox under libvirt/TCG,
# wedged four ways, dumped by `virsh dump` as ELF and kdump-zlib, with drgn's
# ground truth) once per kernel line, then records drgn's view of the tasks,
# modules and printk records with scripts/linux-guest/drgn_truth.py.
#
#   scripts/linux-guest.sh [LINE...]     LINE: 6.1 6.12 6.1-cloud (default: all)
#
# Each line lands in ${HANGSCOPE_LINUX_GUEST_ROOT:-target/linux-guest}/<kernel>/
# (dumps/, peers/, kernel/ with the debug vmlinux, src/hangdemo.ko, venv/).
# Idempotent: a line whose dumps and truth exist is not run again. Prints the
# directories made, one per line, on stdout (everything else goes to stderr).
# Needs root (apt-get, libvirt); about 2 minutes per line once packages are
# cached, most of it waiting for the kernel's hung-task detector.
# HANGSCOPE_LINUX_GUEST_MIB=4096 gives the guest that much memory instead of
# the recipe's 256 MiB (the directory is then <kernel>-<MIB>M), for the
# benchmarks' big dump.
#
# On the 6.1 and 6.12 lines a second guest runs the flood scenario (the Linux
# form of the seed case: scripts/linux-guest/flood-init) from a copy of the
# recipe patched in $W/flood/ (domain `hangflood`, the line's kernel and
# drgn reused), and leaves dumps/flood.{elf,kdump-zlib} and
# peers/flood-{elf,kdump}.json beside the line's hang dumps; about 1 minute
# a line. HANGSCOPE_LINUX_FLOOD=0 skips it; HANGSCOPE_LINUX_FLOOD=only makes
# nothing else (the line's kernel/ and venv/ must then already be there).
# A third guest, the waits (waitdemo.c: an rt_mutex, a completion, a wait
# queue, a locked page and a locked buffer_head), runs the same way from
# $W/waits/ and leaves dumps/waits.* and peers/waits-*.json;
# HANGSCOPE_LINUX_WAITS=0 skips it, =only makes nothing else.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RECIPE=${HANGSCOPE_LINUX_RECIPE:-$ROOT/../shared/tools/linux-guest}
OUT=${HANGSCOPE_LINUX_GUEST_ROOT:-$ROOT/target/linux-guest}
[ -f "$RECIPE/make-hang-dumps.sh" ] || { echo "linux-guest: no recipe at $RECIPE (../shared missing?)" >&2; exit 2; }
mkdir -p "$OUT"

# The kernel package of a line: the recipe's pins while the archive has
# them, else what the line's metapackage depends on today.
resolve() {
  local line=$1 pin pinver meta
  case $line in
    6.1) pin=6.1.0-56-amd64; pinver=6.1.192-2; meta=linux-image-amd64 ;;
    6.12) pin=6.12.118+deb12-amd64; pinver=6.12.118-1~deb12u1; meta=linux-image-6.12-amd64 ;;
    6.1-cloud) pin=6.1.0-56-cloud-amd64; pinver=6.1.192-2; meta=linux-image-cloud-amd64 ;;
    *) echo "linux-guest: unknown line '$line' (6.1, 6.12, 6.1-cloud)" >&2; return 2 ;;
  esac
  if apt-cache show "linux-image-$pin=$pinver" >/dev/null 2>&1; then
    echo "$pin $pinver"; return
  fi
  local pkg ver
  pkg=$(apt-cache depends "$meta" 2>/dev/null | sed -n 's/^ *Depends: linux-image-\(.*\)$/\1/p' | grep -v -- '-dbg$' | head -1)
  ver=$(apt-cache policy "linux-image-$pkg" | sed -n 's/^ *Candidate: //p')
  [ -n "$pkg" ] && [ -n "$ver" ] || { echo "linux-guest: cannot resolve a kernel for line $line" >&2; return 2; }
  echo "$pkg $ver"
}

# A `flock FILE` around this script passes the lock's descriptor down; the
# libvirt daemons the recipe starts would keep it and hold the lock for as
# long as they live. flock itself keeps the lock for us, so close what we
# inherited above 2 (bash reads this script on 255).
for fd in /proc/$$/fd/*; do
  n=${fd##*/}; [ "$n" -gt 2 ] && [ "$n" -lt 255 ] && eval "exec $n>&-"
done 2>/dev/null || true
# Leave libvirt as found: stop, by pid, the daemons that start during this run.
. "$ROOT/scripts/libvirt-daemons.sh"
leave_libvirt_as_found

# Issue 16: a timed series of the 6.1 line's guest (three dumps taken by
# `hangscope capture`, in W/series/), about 35 s the first time, and one
# of the busy flood guest (W/flood-series/);
# HANGSCOPE_SKIP_LINUX_SERIES=1 skips it.
series() {
  local line=$1 W=$2
  [ "$line" = 6.1 ] && [ -z "${HANGSCOPE_LINUX_GUEST_MIB:-}" ] || return 0
  [ "${HANGSCOPE_SKIP_LINUX_SERIES:-}" != 1 ] || return 0
  local t0; t0=$(date +%s)
  "$ROOT/scripts/linux-guest-series.sh" "$W" >/dev/null || { echo "linux-guest: the series of $line failed" >&2; exit 1; }
  echo "linux-guest: $line series in $(( $(date +%s) - t0 )) s" >&2
  # The busy guest: the flood's guest (make_flood) captured every 2 s into
  # W/flood-series/, to show its progress over the series. Its verdict is
  # the last dump's, so that dump must show a busy owner: drgn confirms it
  # as it does for the single flood dump (flood_truth.py --check: readers
  # own the directory's i_rwsem, it has waiters, a CPU runs a reader inside
  # the walk), and the series is taken again until it does.
  [ -s "$W/flood/boot/vmlinuz" ] || return 0
  t0=$(date +%s)
  local check
  check="\"$W/venv/bin/python3\" -m drgn -q -c \"\$LAST_DUMP\" -s \"$W/kernel/usr/lib/debug/boot/vmlinux-$kver\""
  check="$check \"$ROOT/scripts/linux-guest/flood_truth.py\" /run/flood \"$W/flood-series/last-dump-truth.json\" --check"
  HANGSCOPE_SERIES_READY=FLOOD-ESTABLISHED HANGSCOPE_SERIES_SETTLE=3 HANGSCOPE_SERIES_INTERVAL=2 \
  HANGSCOPE_SERIES_DOMAIN=hangscope-flood-series HANGSCOPE_SERIES_OUT=$W/flood-series \
  HANGSCOPE_SERIES_CHECK=$check \
    "$ROOT/scripts/linux-guest-series.sh" "$W/flood" >/dev/null \
    || { echo "linux-guest: the flood series of $line failed" >&2; exit 1; }
  echo "linux-guest: $line flood series in $(( $(date +%s) - t0 )) s, the expected state on try $(cat "$W/flood-series/tries")" >&2
}

# The line's hung guest in $W, from a copy of the recipe.
make_line() {
  t0=$(date +%s)
  mkdir -p "$W"; rm -rf "$W/recipe"; cp -r "$RECIPE" "$W/recipe"; chmod -R u+w "$W/recipe"
  if [ "$line" = 6.1-cloud ]; then
    # The cloud line also runs the guest with 5-level paging (CR4.LA57):
    # Debian's cloud kernel is built with CONFIG_X86_5LEVEL and TCG emulates it.
    sed -i "s|<model fallback='allow'>qemu64</model>|&<feature policy='require' name='la57'/>|" "$W/recipe/hangguest.xml"
  fi
  if [ -n "$mib" ]; then
    sed -i "s|<memory unit='MiB'>[0-9]*</memory>|<memory unit='MiB'>$mib</memory>|" "$W/recipe/hangguest.xml"
  fi
  echo "linux-guest: $line: kernel $kver ($pkgver) into $W" >&2
  # The recipe waits for the guest without a limit; a guest that never
  # wedges (a kernel that does not boot) must not hang the test suite.
  if ! KVER=$kver PKGVER=$pkgver LINUX_GUEST_WORK=$W timeout "${HANGSCOPE_LINUX_GUEST_TIMEOUT:-900}" \
       bash "$W/recipe/make-hang-dumps.sh" >"$W/recipe.log" 2>&1; then
    virsh -c qemu:///system destroy hangguest >/dev/null 2>&1 || true
    echo "linux-guest: the recipe failed for $line; last lines of $W/recipe.log and the guest console:" >&2
    tail -20 "$W/recipe.log" >&2; tail -20 "$W/run/console.log" >&2 2>/dev/null || true
    exit 1
  fi
  V=$W/kernel/usr/lib/debug/boot/vmlinux-$kver
  "$W/venv/bin/drgn" -q -c "$W/dumps/hangguest.elf" -s "$V" -s "$W/src/hangdemo.ko" \
    "$ROOT/scripts/linux-guest/drgn_truth.py" "$W/peers/truth-elf.json" >&2
  "$W/venv/bin/drgn" -q -c "$W/dumps/hangguest.kdump-zlib" --architecture x86_64 -s "$V" -s "$W/src/hangdemo.ko" \
    "$ROOT/scripts/linux-guest/drgn_truth.py" "$W/peers/truth-kdump.json" >&2
  chmod a+r "$W"/dumps/* "$W"/peers/*
  # The packages are extracted; drop the debs (the -dbg one is about 1 GB).
  rm -f "$W"/debs/*.deb
  echo "linux-guest: $line done in $(( $(date +%s) - t0 )) s" >&2
}

# The flood scenario in $1/flood/, from a copy of the recipe: its own /init
# and tool, the domain named hangflood, no download of the -dbg package the
# line already extracted, and flood-dump.sh in place of the recipe's wait for
# the hung-task detector and its dumps.
make_flood() {
  local W=$1 kver=$2 pkgver=$3 F=$1/flood L=$ROOT/scripts/linux-guest
  if [ -s "$W/dumps/flood.elf" ] && [ -s "$W/dumps/flood.kdump-zlib" ] \
     && [ -s "$W/peers/flood-elf.json" ] && [ -s "$W/peers/flood-kdump.json" ]; then
    echo "linux-guest: flood ($kver) already made in $W" >&2; return
  fi
  [ -x "$W/venv/bin/drgn" ] && [ -f "$W/kernel/usr/lib/debug/boot/vmlinux-$kver" ] \
    || { echo "linux-guest: flood needs $W/kernel and $W/venv (make the line first)" >&2; return 2; }
  local t0; t0=$(date +%s)
  rm -rf "$F/recipe"; mkdir -p "$F/debs"; cp -r "$RECIPE" "$F/recipe"; chmod -R u+w "$F/recipe"
  ln -sfn ../kernel "$F/kernel"; ln -sfn ../venv "$F/venv"
  cp "$L/floodtool.c" "$F/recipe/src/"; cp "$L/flood-init" "$F/recipe/src/init"
  cp "$L/flood_truth.py" "$L/flood-dump.sh" "$F/recipe/"
  sed -i "s|<name>hangguest</name>|<name>hangflood</name>|" "$F/recipe/hangguest.xml"
  sed -i 's|cp src/hangtool \$R/bin/hangtool|&; cp src/floodtool $R/bin/floodtool|' "$F/recipe/build-initramfs.sh"
  local M=$F/recipe/make-hang-dumps.sh
  sed -i -e 's|for p in linux-image-\$KVER linux-image-\$KVER-dbg; do|for p in linux-image-$KVER $([ -f $VMLINUX ] \|\| echo linux-image-$KVER-dbg); do|' \
         -e 's|^gcc .*hangtool.c$|&\ngcc -O2 -static -Wall -o src/floodtool src/floodtool.c|' \
         -e 's|destroy hangguest|destroy hangflood|' "$M"
  sed -i '/until grep -q HANG-ESTABLISHED/,$d' "$M"; echo '. ./flood-dump.sh' >> "$M"
  grep -q floodtool "$F/recipe/build-initramfs.sh" && grep -q 'floodtool.c' "$M" && grep -q 'echo linux-image' "$M" \
    || { echo "linux-guest: the recipe changed; cannot patch it for the flood" >&2; return 2; }
  echo "linux-guest: flood: kernel $kver into $F" >&2
  if ! KVER=$kver PKGVER=$pkgver LINUX_GUEST_WORK=$F timeout "${HANGSCOPE_LINUX_GUEST_TIMEOUT:-900}" \
       bash "$M" >"$F/recipe.log" 2>&1; then
    virsh -c qemu:///system destroy hangflood >/dev/null 2>&1 || true
    echo "linux-guest: the flood failed for $kver; last lines of $F/recipe.log and the guest console:" >&2
    tail -20 "$F/recipe.log" >&2; tail -20 "$F/run/console.log" >&2 2>/dev/null || true
    return 1
  fi
  mkdir -p "$W/dumps" "$W/peers"
  mv "$F"/dumps/flood.elf "$F"/dumps/flood.kdump-zlib "$W/dumps/"
  cp "$F"/peers/flood-elf.json "$F"/peers/flood-kdump.json "$F"/peers/flood-tries "$F"/peers/flood-console.log "$W/peers/"
  chmod a+r "$W"/dumps/flood.* "$W"/peers/flood-*
  rm -f "$F"/debs/*.deb
  echo "linux-guest: flood ($kver) done in $(( $(date +%s) - t0 )) s, expected state on dump $(cat "$W/peers/flood-tries")" >&2
}

# The waits scenario in $1/waits/ (issue 12: the waits without a mutex or
# rwsem waiter record), from a copy of the recipe patched like the flood's:
# its own /init (scripts/linux-guest/waits-init) and module (waitdemo.c) in
# place of hangdemo, the domain named hangwaits, and waits-dump.sh in place of
# the recipe's wait and dumps. Leaves dumps/waits.{elf,kdump-zlib} and
# peers/waits-{elf,kdump}.json beside the line's hang dumps.
make_waits() {
  local W=$1 kver=$2 pkgver=$3 F=$1/waits L=$ROOT/scripts/linux-guest
  if [ -s "$W/dumps/waits.elf" ] && [ -s "$W/dumps/waits.kdump-zlib" ] \
     && [ -s "$W/peers/waits-elf.json" ] && [ -s "$W/peers/waits-kdump.json" ]; then
    echo "linux-guest: waits ($kver) already made in $W" >&2; return
  fi
  [ -x "$W/venv/bin/drgn" ] && [ -f "$W/kernel/usr/lib/debug/boot/vmlinux-$kver" ] \
    || { echo "linux-guest: waits needs $W/kernel and $W/venv (make the line first)" >&2; return 2; }
  local t0; t0=$(date +%s)
  rm -rf "$F/recipe"; mkdir -p "$F/debs"; cp -r "$RECIPE" "$F/recipe"; chmod -R u+w "$F/recipe"
  ln -sfn ../kernel "$F/kernel"; ln -sfn ../venv "$F/venv"
  rm -f "$F/recipe/src/hangdemo.c"; cp "$L/waitdemo.c" "$F/recipe/src/"; echo 'obj-m := waitdemo.o' > "$F/recipe/src/Makefile"
  cp "$L/waits-init" "$F/recipe/src/init"
  cp "$L/waits_truth.py" "$L/waits-dump.sh" "$F/recipe/"
  sed -i "s|<name>hangguest</name>|<name>hangwaits</name>|" "$F/recipe/hangguest.xml"
  sed -i 's|src/hangdemo.ko|src/waitdemo.ko|' "$F/recipe/build-initramfs.sh"
  local M=$F/recipe/make-hang-dumps.sh
  sed -i -e 's|for p in linux-image-\$KVER linux-image-\$KVER-dbg; do|for p in linux-image-$KVER $([ -f $VMLINUX ] \|\| echo linux-image-$KVER-dbg); do|' \
         -e 's|destroy hangguest|destroy hangwaits|' "$M"
  sed -i '/until grep -q HANG-ESTABLISHED/,$d' "$M"; echo '. ./waits-dump.sh' >> "$M"
  grep -q waitdemo.ko "$F/recipe/build-initramfs.sh" && grep -q 'echo linux-image' "$M" \
    || { echo "linux-guest: the recipe changed; cannot patch it for the waits" >&2; return 2; }
  echo "linux-guest: waits: kernel $kver into $F" >&2
  if ! KVER=$kver PKGVER=$pkgver LINUX_GUEST_WORK=$F timeout "${HANGSCOPE_LINUX_GUEST_TIMEOUT:-900}" \
       bash "$M" >"$F/recipe.log" 2>&1; then
    virsh -c qemu:///system destroy hangwaits >/dev/null 2>&1 || true
    echo "linux-guest: the waits failed for $kver; last lines of $F/recipe.log and the guest console:" >&2
    tail -20 "$F/recipe.log" >&2; tail -20 "$F/run/console.log" >&2 2>/dev/null || true
    return 1
  fi
  mkdir -p "$W/dumps" "$W/peers"
  mv "$F"/dumps/waits.elf "$F"/dumps/waits.kdump-zlib "$W/dumps/"
  cp "$F"/peers/waits-elf.json "$F"/peers/waits-kdump.json "$F"/peers/waits-console.log "$W/peers/"
  chmod a+r "$W"/dumps/waits.* "$W"/peers/waits-*
  rm -f "$F"/debs/*.deb
  echo "linux-guest: waits ($kver) done in $(( $(date +%s) - t0 )) s" >&2
}

lines=("$@"); [ ${#lines[@]} -gt 0 ] || lines=(6.1 6.12 6.1-cloud)
flood=${HANGSCOPE_LINUX_FLOOD:-1}
waits=${HANGSCOPE_LINUX_WAITS:-1}
for line in "${lines[@]}"; do
  read -r kver pkgver < <(resolve "$line")
  W=$OUT/$kver
  mib=${HANGSCOPE_LINUX_GUEST_MIB:-}
  [ -z "$mib" ] || W=$OUT/$kver-${mib}M
  if [ "$flood" = only ]; then
    make_flood "$W" "$kver" "$pkgver"; echo "$W"; continue
  fi
  if [ "$waits" = only ]; then
    make_waits "$W" "$kver" "$pkgver"; echo "$W"; continue
  fi
  if [ -s "$W/dumps/hangguest.elf" ] && [ -s "$W/dumps/hangguest.kdump-zlib" ] \
     && [ -s "$W/peers/truth-elf.json" ] && [ -s "$W/peers/truth-kdump.json" ]; then
    echo "linux-guest: $line ($kver) already made in $W" >&2
  else
    make_line
  fi
  case "$flood:$line:$mib" in 1:6.1: | 1:6.12:) make_flood "$W" "$kver" "$pkgver" ;; esac
  case "$waits:$line:$mib" in 1:6.1: | 1:6.12:) make_waits "$W" "$kver" "$pkgver" ;; esac
  series "$line" "$W"
  echo "$W"
done
