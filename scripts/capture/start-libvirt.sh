#!/usr/bin/env bash
# Starts libvirt's daemons for the capture tests on a machine without
# systemd (containers, CI), the way a Debian host would have them:
#  - /dev/kvm gets group kvm and mode 0660, as udev would set it. Without
#    that, libvirt (running QEMU as libvirt-qemu) finds KVM present when it
#    probes QEMU but "not available now" when it checks the device, throws
#    its capability cache away and re-probes for ~36 s on every `virsh create`.
#  - virtlogd and libvirtd are started as daemons when not running.
# Idempotent; needs root. Prints nothing on success. A first start probes
# QEMU for its capabilities, which takes over 10 s on a loaded machine:
# it waits up to 60 s for the daemon to answer.
set -euo pipefail
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi
# A daemon that is exiting, or a zombie nobody reaped (a container's init
# may not), has no socket: start one then.
{ pgrep -x virtlogd >/dev/null && [ -S /var/run/libvirt/virtlogd-sock ]; } || virtlogd -d
{ pgrep -x libvirtd >/dev/null && [ -S /var/run/libvirt/libvirt-sock ]; } || libvirtd -d
for _ in $(seq 1 600); do
  virsh -c qemu:///system uri >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "start-libvirt: libvirtd did not answer on qemu:///system within 60 s" >&2
exit 1
