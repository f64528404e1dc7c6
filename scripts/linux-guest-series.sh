#!/bin/bash
# A timed series of dumps of a real hung Linux guest, for issue 16 (busy or
# stuck, proven): boots the kernel and initramfs a line of
# scripts/linux-guest.sh already made (W/boot/vmlinuz, W/boot/initrd.cpio.gz)
# under a libvirt domain of its own, waits until /init has wedged it, then
# takes `hangscope capture --interval N --count 3` into W/series/ (three ELF
# dumps and manifest.json) and destroys the guest.
#
#   scripts/linux-guest-series.sh W [HANGSCOPE]
#
# HANGSCOPE is the binary that captures (default: the workspace's debug
# build, built first). HANGSCOPE_SERIES_INTERVAL (default 4 s) sets the
# interval, HANGSCOPE_SERIES_DOMAIN the domain name (default hangscope-series).
# HANGSCOPE_SERIES_OUT puts the series elsewhere than W/series.
# HANGSCOPE_SERIES_READY is the console line that says the guest is in the
# state to capture (default HANG-ESTABLISHED, the hung guest's; the flood
# guest of scripts/linux-guest.sh says FLOOD-ESTABLISHED), and
# HANGSCOPE_SERIES_SETTLE the seconds to wait after it (default 0).
# HANGSCOPE_SERIES_CHECK, when set, is a bash command that must confirm the
# last dump shows the state the tests expect (its path is in $LAST_DUMP;
# exit 0 = seen): a live guest's last moment is chance (the busy flood's
# reader may be between two walks), so the series is taken again, the guest
# still running, until the check passes, at most HANGSCOPE_SERIES_TRIES
# times (default 6); the try that passed is written to W/series/tries.
# Idempotent: a series whose manifest lists three dumps is not taken again.
# Only one guest may run on a machine at a time: the guest runs under
# `flock /work/libvirt.lock` when that file's directory exists
# (HANGSCOPE_LIBVIRT_LOCK moves it). Prints W/series on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(cd "${1:?usage: linux-guest-series.sh W [HANGSCOPE]}" && pwd)
HS=${2:-}
DOMAIN=${HANGSCOPE_SERIES_DOMAIN:-hangscope-series}
INTERVAL=${HANGSCOPE_SERIES_INTERVAL:-4}
S=${HANGSCOPE_SERIES_OUT:-$W/series}
READY=${HANGSCOPE_SERIES_READY:-HANG-ESTABLISHED}
SETTLE=${HANGSCOPE_SERIES_SETTLE:-0}
CHECK=${HANGSCOPE_SERIES_CHECK:-}
TRIES=${HANGSCOPE_SERIES_TRIES:-6}
LOCK=${HANGSCOPE_LIBVIRT_LOCK:-/work/libvirt.lock}
if [ -s "$S/manifest.json" ] && [ "$(grep -c '"sequence"' "$S/manifest.json")" -ge 3 ]; then
  echo "linux-guest-series: already taken in $S" >&2; echo "$S"; exit 0
fi
[ -s "$W/boot/vmlinuz" ] && [ -s "$W/boot/initrd.cpio.gz" ] || {
  echo "linux-guest-series: $W has no boot/vmlinuz and boot/initrd.cpio.gz (run scripts/linux-guest.sh first)" >&2; exit 2; }
if [ -z "$HS" ]; then
  # The capture is the guest's and QEMU's work: a debug build will do.
  (cd "$ROOT" && cargo build -q -p hangscope)
  HS=${CARGO_TARGET_DIR:-$ROOT/target}/debug/hangscope
fi
rm -rf "$S"; mkdir -p "$S/run"; chmod 777 "$S" "$S/run"
# The recipe's domain, renamed, booting the line's kernel and initramfs.
sed -e "s|<name>[^<]*</name>|<name>$DOMAIN</name>|" -e "s|@WORK@/boot|$W/boot|g" \
    -e "s|@WORK@/run|$S/run|g" "$W/recipe/hangguest.xml" > "$S/domain.xml" 2>/dev/null \
  || sed -e "s|<name>[^<]*</name>|<name>$DOMAIN</name>|" -e "s|$W/run|$S/run|g" \
         "$W/hangguest.xml" > "$S/domain.xml"
grep -q "<name>$DOMAIN</name>" "$S/domain.xml" && grep -q "$S/run/console.log" "$S/domain.xml" || {
  echo "linux-guest-series: could not make the domain XML from $W" >&2; exit 2; }

run_guest() {
  set -euo pipefail
  V="virsh -c qemu:///system"; started=""
  # A daemon that is exiting (the last series' stop, or a zombie) has no
  # socket: start one then, wait for its socket, and remember its pid so
  # that only what this run started is stopped.
  daemon() { # NAME SOCKET
    pgrep -x "$1" >/dev/null && [ -S "$2" ] && return 0
    local before; before=" $(pgrep -x "$1" | tr '\n' ' ' || true)"
    "$1" -d
    for _ in $(seq 50); do [ -S "$2" ] && break; sleep 0.2; done
    for p in $(pgrep -x "$1" || true); do
      case "$before" in *" $p "*) ;; *) started="$started $p" ;; esac
    done
  }
  daemon virtlogd /var/run/libvirt/virtlogd-sock
  daemon libvirtd /var/run/libvirt/libvirt-sock
  stop() {
    $V destroy "$DOMAIN" >/dev/null 2>&1 || true
    for p in $started; do kill "$p" 2>/dev/null || true; done
  }
  trap stop EXIT
  $V destroy "$DOMAIN" >/dev/null 2>&1 || true
  local t0=$SECONDS
  $V create "$S/domain.xml" >/dev/null
  until grep -q "$READY" "$S/run/console.log" 2>/dev/null; do
    [ $((SECONDS - t0)) -lt 300 ] || { echo "linux-guest-series: no $READY from the guest in 300 s" >&2; exit 1; }
    sleep 0.5
  done
  sleep "$SETTLE"
  echo "linux-guest-series: $READY $((SECONDS - t0)) s after create" >&2
  local try ok=""
  for try in $(seq 1 "$TRIES"); do
    rm -f "$S/$DOMAIN"-* "$S/manifest.json"
    "$HS" capture "$DOMAIN" -o "$S" --interval "$INTERVAL" --count 3 --no-progress >"$S/capture.log"
    echo "linux-guest-series: try $try: three dumps $((SECONDS - t0)) s after create" >&2
    [ -n "$CHECK" ] || { ok=$try; break; }
    # The capture names its dumps DOMAIN-TIMESTAMP-SEQUENCE: the last sorts last.
    LAST_DUMP=$(ls "$S/$DOMAIN"-* | sort | tail -1)
    if LAST_DUMP=$LAST_DUMP bash -c "$CHECK" >&2; then ok=$try; break; fi
    echo "linux-guest-series: try $try: the last dump does not show the expected state" >&2
  done
  if [ -z "$ok" ]; then
    rm -f "$S/manifest.json"
    echo "linux-guest-series: the expected state was not in the last dump of $TRIES series" >&2
    exit 1
  fi
  echo "$ok" > "$S/tries"
}
export -f run_guest; export S HS DOMAIN INTERVAL READY SETTLE CHECK TRIES
if [ -d "$(dirname "$LOCK")" ]; then
  # -o: the daemons started inside must not inherit (and keep) the lock.
  flock -o "$LOCK" bash -c run_guest
else
  bash -c run_guest
fi
chmod a+r "$S"/*
echo "$S"
