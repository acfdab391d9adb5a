#!/usr/bin/env bash
# One-time set-up for ferroflow on Debian 12 (and in CI): system packages, a Rust toolchain
# new enough for edition 2024 with clippy and rustfmt, and mdbook for the book.
#
# Idempotent and non-interactive: it reads no stdin, installs only what is missing, and runs
# `apt-get update` only when a package has to be installed. With everything present it
# finishes in well under a second. Works as root, or as a user with sudo.
set -euo pipefail

# Packages: a C toolchain and pkg-config for building crates, curl and certificates for
# rustup, graphviz (and a font for its labels) to render graph pictures, and Mesa's Vulkan
# drivers (lavapipe) so the wgpu backend has a software adapter on machines without a GPU.
APT_PACKAGES=(build-essential pkg-config ca-certificates curl git graphviz fonts-dejavu-core mesa-vulkan-drivers)
# Oldest rustc that builds the crate (Cargo.toml `rust-version`).
MIN_RUST_MINOR=85
# mdbook 0.4.52 builds with Rust >= 1.82; only the `search` feature is needed (no server).
MDBOOK_VERSION=0.4.52

log() { printf '[setup] %s\n' "$*"; }

# Run as root directly, through sudo when we are not root, or fail with a clear message.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root to run: $*  (run this script as root, or install sudo)"
        return 1
    fi
}

# ---- system packages ------------------------------------------------------------------
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        if [[ $status != *"install ok installed"* ]]; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing with apt-get: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" </dev/null
    else
        log "system packages present"
    fi
else
    log "no apt-get here: install yourself ${APT_PACKAGES[*]} (or their equivalents)"
fi

# ---- Rust toolchain -------------------------------------------------------------------
# rustup installs into ~/.cargo/bin; make it visible to the rest of this script.
ORIG_PATH=$PATH
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

rust_ok() {
    command -v cargo >/dev/null 2>&1 || return 1
    local minor
    minor=$(rustc --version 2>/dev/null | sed -nE 's/^rustc 1\.([0-9]+).*/\1/p')
    [ -n "$minor" ] && [ "$minor" -ge "$MIN_RUST_MINOR" ]
}

if ! rust_ok; then
    if command -v rustup >/dev/null 2>&1; then
        log "updating the Rust toolchain with rustup (need rustc >= 1.$MIN_RUST_MINOR)"
        rustup toolchain install stable --profile minimal -c clippy -c rustfmt </dev/null
        rustup default stable </dev/null
    else
        log "installing Rust with rustup (need rustc >= 1.$MIN_RUST_MINOR)"
        # `-y`: rustup-init asks nothing, so the pipe is the only stdin it sees.
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs </dev/null |
            sh -s -- -y --no-modify-path --profile minimal -c clippy -c rustfmt
        # Let a plain `cargo` in the same shell line (`scripts/setup.sh && cargo ...`) find
        # the new toolchain: the caller's PATH lacks ~/.cargo/bin, or finds an older cargo.
        bin="${CARGO_HOME:-$HOME/.cargo}/bin"
        if [ -d /usr/local/bin ]; then
            for tool in cargo rustc rustdoc rustup cargo-clippy clippy-driver rustfmt cargo-fmt; do
                found=$(PATH=$ORIG_PATH command -v "$tool" || true)
                if [ -e "$bin/$tool" ] && [ "$found" != "$bin/$tool" ]; then
                    as_root ln -sf "$bin/$tool" "/usr/local/bin/$tool" || true
                fi
            done
        fi
        log "Rust installed in $bin (add it to PATH: . \"\$HOME/.cargo/env\")"
    fi
fi
rust_ok || { log "rustc >= 1.$MIN_RUST_MINOR not found after set-up"; exit 1; }

# clippy and rustfmt are used by .ci/run; add them when rustup manages the toolchain.
if command -v rustup >/dev/null 2>&1; then
    cargo clippy --version >/dev/null 2>&1 || rustup component add clippy </dev/null
    cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt </dev/null
fi
log "$(rustc --version)"

# ---- mdbook -----------------------------------------------------------------------------
if command -v mdbook >/dev/null 2>&1; then
    log "$(mdbook --version) present"
else
    log "installing mdbook $MDBOOK_VERSION (cargo install, a few minutes once)"
    cargo install mdbook --version "$MDBOOK_VERSION" --locked \
        --no-default-features --features search </dev/null
fi

log "done"
