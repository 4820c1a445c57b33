#!/usr/bin/env bash
# Build a minimal Debian bookworm image with Python 3.11 and venv, from Debian's packages only.
#
# For machines that cannot pull python:3.11-slim (air-gapped, or a registry that is blocked):
# the result is a drop-in BASE_IMAGE for the Dockerfile. It is what the container e2e test uses.
#
#   deploy/images/build-base-image.sh [TAG]        # default tag: ganserve-base:bookworm
#   docker build --build-arg BASE_IMAGE=ganserve-base:bookworm -t ganserve .
#
# Needs root, debootstrap and a reachable Debian mirror (DEBIAN_MIRROR, default deb.debian.org).
# Takes about a minute. Set DOCKER=podman to import into podman instead.
set -euo pipefail

tag=${1:-ganserve-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
docker=${DOCKER:-docker}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

# minbase = Essential packages + apt. python3-venv brings ensurepip, so `python3 -m venv`
# yields a venv with pip (as on python:3.11-slim); passwd brings useradd for the non-root user.
# No compilers: every runtime dependency of the service ships as a manylinux wheel.
debootstrap --variant=minbase --include=python3,python3-venv,passwd \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# What an image never needs: the .deb cache, package lists (apt-get update refetches them),
# man pages and translations. About half the size.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/lib/apt/lists/* "$root"/usr/share/man/* "$root"/usr/share/locale/*

tar -C "$root" --numeric-owner -c . | "$docker" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$tag" >/dev/null
echo "built $tag ($("$docker" run --rm "$tag" python3 --version))"
