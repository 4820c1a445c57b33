#!/usr/bin/env bash
# Build a Prometheus image from Debian's `prometheus` package, for machines that cannot pull
# prom/prometheus. Pass the result to docker compose as PROMETHEUS_IMAGE.
#
#   deploy/images/build-prometheus-image.sh [TAG] [BASE_IMAGE]
#       TAG         default ganserve-prometheus:debian
#       BASE_IMAGE  any Debian bookworm image (the binaries need only glibc);
#                   default ganserve-base:bookworm, from build-base-image.sh
#
# Needs apt (with package lists: apt-get update) to download the .deb; nothing is installed
# on the host. Set DOCKER=podman to build with podman.
set -euo pipefail

tag=${1:-ganserve-prometheus:debian}
base=${2:-ganserve-base:bookworm}
docker=${DOCKER:-docker}
here=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory; as root it warns that the _apt user
# cannot write there, which is harmless.
(cd "$work" && apt-get download -q prometheus >/dev/null 2>&1) \
    || { echo "apt-get download prometheus failed (run apt-get update?)" >&2; exit 1; }
dpkg-deb -x "$work"/prometheus_*.deb "$work/pkg"
cp "$here/prometheus.Dockerfile" "$work/Dockerfile"

"$docker" build --build-arg "BASE_IMAGE=$base" -t "$tag" "$work" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
echo "built $tag ($("$docker" run --rm "$tag" --version 2>&1 | head -n 1))"
