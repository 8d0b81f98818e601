#!/usr/bin/env bash
# The project's one test command: installs what the end-to-end tests drive (when missing),
# then runs formatting, lints and every test. Extra arguments go to `cargo test`,
# e.g. `tests/run-all.sh --test offline`.
#
# The end-to-end tests start a real upstream registry (docker-registry), containerd and
# podman, and use the machine's Docker Engine; they need root.
set -euo pipefail

cd "$(dirname "$0")/.."

# command -> Debian package
declare -A NEEDED=(
    [/usr/bin/docker-registry]=docker-registry
    [skopeo]=skopeo
    [containerd]=containerd
    [ctr]=containerd
    [podman]=podman
    [curl]=curl
    [openssl]=openssl
    [htpasswd]=apache2-utils
    [jq]=jq
    [nginx]=nginx
    [python3]=python3
    [pip3]=python3-pip
    [systemd-analyze]=systemd
    [debootstrap]=debootstrap
    # the shells and man tools the completion scripts and manual pages are tried with
    [bash]=bash
    [zsh]=zsh
    [fish]=fish
    [groff]=groff-base
    [man]=man-db
    # a real S3-compatible store for the fleet tests (tests/support/ceph.rs)
    [radosgw]=radosgw
    [ceph-mon]=ceph-mon
    [ceph-osd]=ceph-osd
)

missing=()
for cmd in "${!NEEDED[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
if [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then
    missing+=(ca-certificates)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "run-all: installing missing test dependencies: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "run-all: installing packages needs root; run this script as root" \
            "or install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "run-all: warning: the end-to-end tests (containerd, podman, Docker) need root" >&2
    # A plain `cargo test` leaves them out without root (see build.rs); this script runs them.
    export OCIREGISTRY_E2E=1
fi
if ! docker info >/dev/null 2>&1; then
    echo "run-all: warning: no reachable Docker Engine; the docker pull tests will fail" >&2
fi

# Build scripts and probes send their noise to /dev/null, and cargo asks rustc about the
# target with /dev/null as the program to compile. Where something has replaced the device
# with a plain file, that file fills with the noise and every later cargo command fails with
# rustc errors about it: put the device back (as root) before each step.
null_device() {
    [ -c /dev/null ] && return 0
    echo "run-all: /dev/null is a plain file here, not the null device; recreating it" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "run-all: recreating /dev/null needs root" >&2
        exit 1
    fi
    rm -f /dev/null
    mknod -m 666 /dev/null c 1 3
}

null_device
echo "run-all: cargo fmt --check"
cargo fmt --all -- --check
null_device
echo "run-all: cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
if [ $# -eq 0 ]; then
    null_device
    echo "run-all: fuzz targets (short, fixed budget)"
    tests/fuzz-smoke.sh
fi
null_device
echo "run-all: cargo test"
cargo test --workspace "$@"
