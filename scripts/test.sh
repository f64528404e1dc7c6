#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs
# formatting, lints and every test (unit, lab images, Volatility 3 peers,
# QEMU/libvirt capture).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Leave libvirt as found: the capture and live tests start libvirtd and
# virtlogd when they are not running.
. scripts/libvirt-daemons.sh
leave_libvirt_as_found
export HANGSCOPE_VENV="$(pwd)/target/venv"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Real hung Linux guests (Debian 6.1, 6.12 and the 6.1 cloud kernel under
# libvirt/TCG, dumped by `virsh dump`, with drgn's ground truth): about 3
# minutes a line the first time, nothing once made (scripts/linux-guest.sh).
# HANGSCOPE_SKIP_LINUX_GUEST=1 skips them; the Linux tests then say so.
if [ "${HANGSCOPE_SKIP_LINUX_GUEST:-0}" != 1 ]; then
  HANGSCOPE_LINUX_GUESTS=$(./scripts/linux-guest.sh | paste -sd: -)
  export HANGSCOPE_LINUX_GUESTS
fi
cargo test --workspace
# Every fuzz target, briefly: it must build and survive a few seconds from
# its seeds (scripts/fuzz.sh; skipped without a nightly toolchain).
./scripts/fuzz.sh "${FUZZ_SMOKE_SECS:-3}"
