#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed, short budget (FUZZ_SECONDS, default 15)
# so that CI exercises them; longer runs are by hand: cd fuzz && cargo +nightly fuzz run NAME.
# Needs a nightly toolchain (libFuzzer instrumentation); without one it says so and exits 0,
# since the same properties run on stable in tests/hardening/properties.rs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz-smoke: no nightly toolchain here; skipping the fuzz targets" \
        "(their stable twin is tests/hardening/properties.rs)"
    exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
for target in $(cargo +nightly fuzz list); do
    echo "fuzz-smoke: $target for ${FUZZ_SECONDS:-15} s"
    cargo +nightly fuzz run "$target" -- -max_total_time="${FUZZ_SECONDS:-15}" \
        -rss_limit_mb=1024 2>&1 | tail -n 3
done
