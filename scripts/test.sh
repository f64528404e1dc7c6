#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs
# formatting, lints and every test (unit, lab images, Volatility 3 peers,
# QEMU/libvirt capture).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export HANGSCOPE_VENV="$(pwd)/target/venv"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# Every fuzz target, briefly: it must build and survive a few seconds from
# its seeds (scripts/fuzz.sh; skipped without a nightly toolchain).
./scripts/fuzz.sh "${FUZZ_SMOKE_SECS:-3}"
