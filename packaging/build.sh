#!/usr/bin/env bash
# Builds the .deb and the .rpm into target/ (needs cargo-deb and
# cargo-generate-rpm: `cargo install --locked cargo-deb cargo-generate-rpm`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
rm -rf target/assets
cargo run --quiet --locked --example generate-docs -- target/assets
gzip -9n target/assets/xmpp-token-auth.1
# Debian's NEWS file, compressed as lintian wants it.
gzip -9n < packaging/deb/NEWS.Debian > target/assets/NEWS.Debian.gz

# cargo deb names the .deb it made; cargo generate-rpm says nothing.
cargo deb --no-build --locked --output target/
cargo generate-rpm --output target/
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
echo "target/xmpp-token-auth-$version-1.$(uname -m).rpm"
