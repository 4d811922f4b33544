#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian machine, or
# says exactly what to run when it cannot (not root). Safe to run every time:
# it only acts when something is missing.
set -euo pipefail

missing=0

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "ensure-deps: installing QEMU (qemu-system-x86)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y --no-install-recommends qemu-system-x86
    else
        echo "ensure-deps: qemu-system-x86_64 is missing; install it with:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y qemu-system-x86" >&2
        missing=1
    fi
fi

if ! command -v rustup >/dev/null 2>&1; then
    echo "ensure-deps: rustup is missing; install it from https://rustup.rs" >&2
    missing=1
else
    # Run from the repository root so rustup picks the toolchain of
    # rust-toolchain.toml (installing it if needed).
    cd "$(dirname "$0")/.."
    installed=$(rustup component list --installed 2>/dev/null || true)
    if ! grep -q '^rust-src' <<<"$installed"; then
        echo "ensure-deps: adding the rust-src component (build-std needs it)"
        rustup component add rust-src
    fi
    # make lint (CI) needs these; rust-toolchain.toml lists them too.
    for c in clippy rustfmt; do
        if ! grep -q "^$c" <<<"$installed"; then
            echo "ensure-deps: adding the $c component (make lint needs it)"
            rustup component add "$c"
        fi
    done
fi

if ! command -v addr2line >/dev/null 2>&1; then
    echo "ensure-deps: note: addr2line (binutils) not found; kernel backtraces will not be symbolized" >&2
fi

exit "$missing"
