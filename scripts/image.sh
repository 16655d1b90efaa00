#!/usr/bin/env bash
# Builds the container image (deploy/image/Containerfile) with Debian's podman, without
# any registry: the base image is made from Debian's own mirror with mmdebstrap, once.
#
#   scripts/image.sh [BINARY]    default: the shipped build (cargo build --profile dist)
#
# Environment: IMAGE (default localhost/lookout:latest); BASE (an image to build on,
# e.g. docker.io/library/debian:bookworm-slim where a registry is reachable; default:
# localhost/lookout-base:bookworm, made here); CONTAINERS_CONF as podman reads it.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IMAGE:-localhost/lookout:latest}
base=${BASE:-localhost/lookout-base:bookworm}
binary=${1:-}

need=()
command -v podman >/dev/null || need+=(podman runc)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing ${need[*]} (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# podman on this kind of host: no ulimits to copy into the container, cgroupfs, runc.
if [ -z "${CONTAINERS_CONF:-}" ]; then
    export CONTAINERS_CONF="$PWD/target/image/containers.conf"
    mkdir -p target/image
    printf '[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CONF"
fi
podman=(podman --runtime runc --cgroup-manager cgroupfs)

if [ "$base" = localhost/lookout-base:bookworm ] && ! "${podman[@]}" image exists "$base"; then
    echo "making $base from Debian's mirror (mmdebstrap, once)"
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    mmdebstrap --quiet --variant=minbase --include=ca-certificates,passwd \
        bookworm "$rootfs/rootfs.tar"
    "${podman[@]}" import --quiet "$rootfs/rootfs.tar" "$base" >/dev/null
fi

if [ -z "$binary" ]; then
    cargo build --profile dist --quiet --bin lookout
    binary=target/dist/lookout
fi
context=target/image/context
rm -rf "$context" && mkdir -p "$context"
cp deploy/image/Containerfile "$context/"
# No debug info in the image (a BINARY given may carry some; dist's has none), but the
# symbols stay, so that a backtrace names its functions.
strip --strip-debug -o "$context/lookout" "$binary"

"${podman[@]}" build --quiet --format docker --build-arg "BASE=$base" \
    --tag "$image" "$context" >/dev/null
echo "built $image ($(du -h "$context/lookout" | cut -f1) binary, on $base)"
