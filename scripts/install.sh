#!/usr/bin/env bash
# Installs the C library: libweightflow.so, include/weightflow.h and a pkg-config file weightflow.pc.
#
#   scripts/install.sh [PREFIX]        # default PREFIX=/usr/local; PROFILE=debug|release (default release)
#   CARGO_FEATURES=runtime scripts/install.sh ~/.local
#
# Then: cc app.c $(pkg-config --cflags --libs weightflow)   (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig if PREFIX is
# not a system prefix; LD_LIBRARY_PATH=PREFIX/lib at run time likewise).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${1:-/usr/local}"
profile="${PROFILE:-release}"
libdir="$prefix/lib"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"

profile_flag=()
[ "$profile" = release ] && profile_flag=(--release)
features=()
[ -n "${CARGO_FEATURES:-}" ] && features=(--features "$CARGO_FEATURES")
cargo build --lib "${profile_flag[@]}" "${features[@]}"

install -d "$libdir/pkgconfig" "$prefix/include"
install -m 0755 "target/$profile/libweightflow.so" "$libdir/libweightflow.so"
install -m 0644 include/weightflow.h "$prefix/include/weightflow.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" weightflow.pc.in \
  >"$libdir/pkgconfig/weightflow.pc"
echo "installed weightflow $version ($profile) under $prefix" >&2
