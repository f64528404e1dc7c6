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
# (one guest at a time on this machine).
#
#   flock /work/libvirt.lock scripts/live-linux-guest.sh GUEST_DIR [HANGSCOPE]
set -euo pipefail
GUEST=${1:?usage: live-linux-guest.sh GUEST_DIR [HANGSCOPE]}
HS=${2:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/hangscope}
NAME=hslive-$$
W=$(mktemp -d /tmp/hslive-XXXXXX); chmod 777 "$W"
V="virsh -c qemu:///system"
daemons_before=$(pgrep -x libvirtd || true)
cleanup() {
  $V destroy "$NAME" >/dev/null 2>&1 || true
  if [ -z "$daemons_before" ]; then for d in libvirtd virtlogd; do pkill -x "$d" 2>/dev/null || true; done; fi
  rm -rf "$W"
}
trap cleanup EXIT
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || { libvirtd -d; sleep 2; }
sed -e "s|<name>hangguest</name>|<name>$NAME</name>|" -e "s|@WORK@/boot|$GUEST/boot|g" \
    -e "s|@WORK@/run/console.log|$W/console.log|" "$GUEST/hangguest.xml" > "$W/dom.xml"
$V create "$W/dom.xml" >/dev/null
t0=$(date +%s)
until grep -q 'blocked for more than' "$W/console.log" 2>/dev/null; do
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
