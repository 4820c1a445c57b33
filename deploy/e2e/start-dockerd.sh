#!/usr/bin/env bash
# Start a Docker engine in the background if none answers (CI machines have no init system
# that would). Idempotent. The log goes to $DOCKERD_LOG (default /tmp/dockerd.log).
#
#   deploy/e2e/start-dockerd.sh [PIDFILE]
#
# PIDFILE receives the pid of the dockerd it starts (nothing when an engine already answers):
# whoever started it can stop it again, as scripts/test.sh does (deploy/e2e/docker-leftovers.sh).
#
# On the CI machine kind (a root VM, cgroup v1, nftables) the defaults work: overlay2
# storage, the docker0 bridge with NAT for the build's pip downloads. Extra daemon flags, if
# another machine needs them (e.g. --storage-driver=vfs, --iptables=false), go in
# DOCKERD_FLAGS.
set -euo pipefail
pidfile=${1:-}

docker info >/dev/null 2>&1 && exit 0
command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install docker.io" >&2; exit 1; }

log=${DOCKERD_LOG:-/tmp/dockerd.log}
# shellcheck disable=SC2086  # DOCKERD_FLAGS is a list of flags
nohup dockerd ${DOCKERD_FLAGS:-} >"$log" 2>&1 &
# Written before it answers: one that never comes up is still running, and still ours to stop.
if [ -n "$pidfile" ]; then echo "$!" >"$pidfile"; fi
for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && { echo "dockerd started (log: $log)"; exit 0; }
    sleep 0.5
done
echo "dockerd did not come up in 30 s; the end of $log:" >&2
tail -n 20 "$log" >&2
exit 1
