#!/usr/bin/env bash
# What a test run leaves in Docker, removed again. scripts/test.sh records before the tests
# and removes after them (unless --keep):
#
#   deploy/e2e/docker-leftovers.sh record STATE_DIR   # note what the engine holds now
#   deploy/e2e/docker-leftovers.sh remove STATE_DIR   # remove what the run added since, and
#                                                     # stop the dockerd in STATE_DIR/dockerd.pid
#
# What a run adds (tests/deploy/test_e2e.py runs deploy/e2e/e2e.sh): the images in
# $TEST_IMAGES (default: e2e.sh's ganserve:e2e, ganserve-prometheus:debian and
# ganserve-base:bookworm), the untagged images its builds leave (the builder stage, an older
# ganserve:e2e) and BuildKit's build cache. Only what was not there at `record` goes: an image
# or a cache record that was there before is kept, whoever made it. STATE_DIR/dockerd.pid is
# where deploy/e2e/start-dockerd.sh wrote the pid of a dockerd it started; one that was
# already running is left alone. Stopping dockerd needs the rights that started it (root).
set -euo pipefail

usage="usage: $0 record|remove STATE_DIR"
command=${1:?$usage}
state=${2:?$usage}
# Children first: a base image goes with the last image built on it.
read -r -a test_images <<<"${TEST_IMAGES:-ganserve:e2e ganserve-prometheus:debian ganserve-base:bookworm}"

engine() { docker info >/dev/null 2>&1; }
test_images_present() {
    local image
    for image in "${test_images[@]}"; do
        if docker image inspect "$image" >/dev/null 2>&1; then echo "$image"; fi
    done
}
untagged_images() { docker images --quiet --no-trunc --filter dangling=true; }
build_cache() { docker system df --verbose --format '{{range .BuildCache}}{{println .ID}}{{end}}'; }
# The lines of stdin that are not lines of FILE.
added_since() { grep --invert-match --line-regexp --fixed-strings --file "$1" || true; }

record() {
    mkdir -p "$state"
    engine || return 0  # nothing to compare with later; `remove` then leaves images alone
    test_images_present >"$state/images"
    untagged_images >"$state/untagged"
    build_cache >"$state/build-cache"
}

remove_images() {
    local image id added left
    for image in $(test_images_present | added_since "$state/images"); do
        if docker image rm "$image" >/dev/null; then echo "removed image $image"; else failed=1; fi
    done
    for id in $(untagged_images | added_since "$state/untagged"); do
        if docker image rm "$id" >/dev/null; then echo "removed untagged image $id"; else failed=1; fi
    done
    # One record per call (the filter takes one id); a record goes only after those built
    # on it, so a second pass takes what the first left.
    added=$(build_cache | added_since "$state/build-cache" | wc -l)
    for _ in 1 2; do
        for id in $(build_cache | added_since "$state/build-cache"); do
            docker builder prune --force --filter "id=$id" >/dev/null || true
        done
    done
    left=$(build_cache | added_since "$state/build-cache" | wc -l)
    if [ "$added" -gt 0 ]; then echo "removed $((added - left)) of $added build cache records"; fi
    if [ "$left" -gt 0 ]; then failed=1; fi
}

# A live process named dockerd (the pid may have ended, or been reused by another program).
is_dockerd() {
    local stat comm
    read -r stat comm < <(ps -o stat=,comm= -p "$1" 2>/dev/null) || return 1
    [ "$comm" = dockerd ] && [[ $stat != Z* ]]
}

stop_dockerd() {
    local pidfile=$state/dockerd.pid pid
    [ -s "$pidfile" ] || return 0
    pid=$(<"$pidfile")
    rm -f "$pidfile"
    is_dockerd "$pid" || return 0
    kill -TERM "$pid"
    # It stops its containers first (10 s each at most, in parallel).
    for _ in $(seq 60); do
        is_dockerd "$pid" || { echo "stopped dockerd (pid $pid)"; return 0; }
        sleep 0.5
    done
    echo "dockerd (pid $pid) did not stop within 30 s of SIGTERM; left running" >&2
    return 1
}

case $command in
    record) record ;;
    remove)
        failed=0
        if [ -f "$state/images" ] && engine; then remove_images; fi
        stop_dockerd || failed=1
        exit "$failed"
        ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
