#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent:
# every step checks first and does nothing when its tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have clang || need_apt+=(clang)
have lld-link || need_apt+=(lld)
have llvm-pdbutil || need_apt+=(llvm)
have qemu-system-x86_64 || need_apt+=(qemu-system-x86)
have virsh || need_apt+=(libvirt-clients)
have libvirtd || need_apt+=(libvirt-daemon-system)
dpkg -s python3-venv >/dev/null 2>&1 || need_apt+=(python3-venv)
have xz || need_apt+=(xz-utils)
have cpio || need_apt+=(cpio)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi
# Debian names the MSVC-style linker lld-link only through the versioned package.
if ! have lld-link; then
  for c in /usr/bin/lld-link-* /usr/lib/llvm-*/bin/lld-link; do
    [ -x "$c" ] && ln -sf "$c" /usr/local/bin/lld-link && break
  done
fi

VENV="$ROOT/target/venv"
if [ ! -x "$VENV/bin/vol" ]; then
  echo "setup: creating $VENV with volatility3" >&2
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q 'volatility3==2.28.2' pefile >&2
fi
