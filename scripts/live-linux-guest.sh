#!/usr/bin/env bash
# `hangscope live` on the real hung Linux guest: boots the kernel and
# initramfs a scripts/linux-guest.sh line made (GUEST_DIR, e.g. /work/lg61)
# under libvirt/TCG as the domain hslive-<pid>, waits until the guest has
# wedged and the hung-task detector has spoken, then
#   1. `hangscope live DOMAIN analyze --json` on the running guest (pause to copy);
#   2. suspends it, `hangscope live DOMAIN analyze --json` (read in place),
#      `hangscope capture` of that same moment and `hangscope analyze` of it;
#   3. resumes it and checks that it runs, then destroys it.
# Prints the verdicts and where they differ; exits non-zero if the live and
# captured verdicts (overall, exit code, finding kinds and their threads)
# differ or the guest was left paused. Run it under `flock /work/libvirt.lock`
# (one guest at a time on this machine; -o keeps the lock from the
# libvirt daemons it may start).
#
#   flock -o /work/libvirt.lock scripts/live-linux-guest.sh GUEST_DIR [HANGSCOPE]
set -euo pipefail
GUEST=${1:?usage: live-linux-guest.sh GUEST_DIR [HANGSCOPE]}
HS=${2:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/hangscope}
NAME=hslive-$$
W=$(mktemp -d /tmp/hslive-XXXXXX); chmod 755 "$W"; mkdir -m 777 "$W/run"
V="virsh -c qemu:///system"
# libvirt may relabel the kernel and initramfs it boots: boot copies.
mkdir "$W/boot"; cp "$GUEST/boot/vmlinuz" "$GUEST/boot/initrd.cpio.gz" "$W/boot/"
XML=$GUEST/hangguest.xml; grep -q @WORK@ "$XML" 2>/dev/null || XML=$GUEST/recipe/hangguest.xml
# Leave libvirt as found: stop, by pid, the daemons that start during this run.
daemon_pids() { pgrep -x libvirtd || true; pgrep -x virtlogd || true; }
daemons_before=" $(daemon_pids | tr '\n' ' ')"
cleanup() {
  $V destroy "$NAME" >/dev/null 2>&1 || true
  local p
  for p in $(daemon_pids); do
    case "$daemons_before" in *" $p "*) ;; *) kill "$p" 2>/dev/null || true ;; esac
  done
  rm -rf "$W"
}
trap cleanup EXIT
"$(dirname "$0")/capture/start-libvirt.sh"
sed -e "s|<name>[^<]*</name>|<name>$NAME</name>|" -e "s|@WORK@|$W|g" "$XML" > "$W/dom.xml"
$V create "$W/dom.xml" >/dev/null
t0=$(date +%s)
until grep -q 'blocked for more than' "$W/run/console.log" 2>/dev/null; do
  sleep 1
  [ $(( $(date +%s) - t0 )) -lt 600 ] || { echo "the guest did not wedge in 600 s" >&2; exit 1; }
done
echo "wedged after $(( $(date +%s) - t0 )) s" >&2
"$HS" live "$NAME" analyze --json > "$W/running.json" 2> "$W/running.err" || true
cat "$W/running.err" >&2
$V suspend "$NAME" >/dev/null
"$HS" live "$NAME" analyze --json > "$W/live.json" 2> "$W/live.err" || true
cat "$W/live.err" >&2
"$HS" capture "$NAME" -c qemu:///system -o "$W/cap" --no-progress >/dev/null 2>&1
"$HS" analyze --json "$W"/cap/*.elf > "$W/dump.json" 2>/dev/null || true
$V resume "$NAME" >/dev/null
state=$($V domstate "$NAME" | head -1)
python3 - "$W/running.json" "$W/live.json" "$W/dump.json" "$state" <<'EOF'
import json, sys
def load(p):
    try: return json.load(open(p))
    except Exception as e: return {"error": str(e)}
def shape(v):
    return {"overall": v.get("overall"), "exit_code": v.get("exit_code"),
            "findings": sorted((f["kind"], tuple(sorted(t.get("tid") or 0 for t in f.get("threads", []))))
                               for f in v.get("findings", []))}
running, live, dump = (load(p) for p in sys.argv[1:4])
for name, v in (("running, pause to copy", running), ("paused, live", live), ("paused, capture", dump)):
    print(f"{name}: {shape(v)}")
bad = shape(live) != shape(dump)
strip = lambda v: {k: x for k, x in v.items() if k != "warnings"}
print("live == capture, every field but warnings:", strip(live) == strip(dump))
if not bad:
    print("warnings only in live:", sorted(set(live.get("warnings", [])) - set(dump.get("warnings", []))))
    print("warnings only in the capture:", sorted(set(dump.get("warnings", [])) - set(live.get("warnings", []))))
print("guest state after:", sys.argv[4])
sys.exit(1 if bad or sys.argv[4] != "running" else 0)
EOF
