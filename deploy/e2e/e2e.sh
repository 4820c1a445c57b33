#!/usr/bin/env bash
# Container end-to-end test: build the image, `compose up` the real stack (api + Prometheus),
# sample images over HTTP, see Prometheus scrape the api, tear everything down.
#
#   deploy/e2e/e2e.sh              # run by tests/deploy/test_e2e.py in CI; ~3-4 min on 2 cores
#
# Needs a running Docker engine (deploy/e2e/start-dockerd.sh), docker compose v2 or
# docker-compose 1.29, curl and python3. Optional environment:
#   BASE_IMAGE        base of the api image; default: ganserve-base:bookworm, built here with
#                     deploy/images/build-base-image.sh (debootstrap) when missing, because
#                     public registries may be unreachable
#   PROMETHEUS_IMAGE  default: ganserve-prometheus:debian, built from Debian's package when missing
#   MODELS_DIR        models to serve; default: models/ when it holds *.onnx, else a tiny test
#                     generator made by tests.support.onnx_models (so the stack is tested
#                     before the trained models ship)
#   BUILD_CA_FILE     CA bundle for pip in the build (TLS-intercepting proxies); default: the
#                     system bundle /etc/ssl/certs/ca-certificates.crt when present
#   KEEP=1            leave the stack running at the end (then: $COMPOSE -p <project> down -v)
# Grafana is not started (its image may not be pullable); the dashboard's queries are checked
# against a real Prometheus by tests/deploy/test_promql.py instead.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
python=${PYTHON:-python3}
log() { printf '[e2e %4ss] %s\n' "$SECONDS" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null; then compose=(docker-compose)
else fail "neither 'docker compose' nor docker-compose is installed"; fi
docker info >/dev/null 2>&1 || fail "no Docker engine (deploy/e2e/start-dockerd.sh starts one)"

work=$(mktemp -d)
project="ganserve-e2e-$$"
ca_copy="deploy/docker/build-ca/e2e-build-ca.pem"  # git-ignored; a fixed name keeps the build cache
# Two free ports from sockets bound at the same time: two separate binds may both be given
# the same port once the first is closed (it happened: compose then failed to bind it twice).
free_ports() {
    "$python" -c 'import socket; s = [socket.socket() for _ in range(2)]; [x.bind(("127.0.0.1", 0)) for x in s]; print(*(x.getsockname()[1] for x in s))'
}

export COMPOSE_PROJECT_NAME=$project
export GANSERVE_IMAGE="ganserve:e2e"
read -r API_PORT PROMETHEUS_PORT < <(free_ports)
export BIND_ADDRESS=127.0.0.1 API_PORT PROMETHEUS_PORT
api="http://127.0.0.1:$API_PORT"
prom="http://127.0.0.1:$PROMETHEUS_PORT"

cleanup() {
    status=$?
    if [ "$status" -ne 0 ]; then
        log "logs of the stack:"
        "${compose[@]}" logs --no-color --tail=60 >&2 || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        log "KEEP=1: stack left running as project $project ($api, $prom)"
    else
        "${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true
    fi
    rm -f "$ca_copy"
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

# ---- 1. images that cannot be pulled here are built locally -------------------------------
if [ -z "${BASE_IMAGE:-}" ]; then
    BASE_IMAGE=ganserve-base:bookworm
    if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "building $BASE_IMAGE with debootstrap"
        deploy/images/build-base-image.sh "$BASE_IMAGE"
    fi
fi
if [ -z "${PROMETHEUS_IMAGE:-}" ]; then
    PROMETHEUS_IMAGE=ganserve-prometheus:debian
    if ! docker image inspect "$PROMETHEUS_IMAGE" >/dev/null 2>&1; then
        log "building $PROMETHEUS_IMAGE from Debian's prometheus package"
        deploy/images/build-prometheus-image.sh "$PROMETHEUS_IMAGE" "$BASE_IMAGE"
    fi
fi
export BASE_IMAGE PROMETHEUS_IMAGE

# ---- 2. the models to serve ----------------------------------------------------------------
if [ -z "${MODELS_DIR:-}" ]; then
    if compgen -G "models/*.onnx" >/dev/null; then
        MODELS_DIR="$repo/models"
        log "serving the shipped models: $(cd models && echo *.onnx)"
    else
        MODELS_DIR="$work/models"
        "$python" -m tests.support.onnx_models "$MODELS_DIR" >/dev/null
        log "models/ has no *.onnx yet: serving a tiny test generator instead"
    fi
fi
export MODELS_DIR
chmod -R a+rX "$MODELS_DIR"   # the container's non-root user reads it through the bind mount

# ---- 3. build the api image through compose (its build section is under test too) ----------
ca=${BUILD_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$ca" ]; then cp "$ca" "$ca_copy"; log "pip in the build trusts $ca"; fi
log "building $GANSERVE_IMAGE (base $BASE_IMAGE)"
"${compose[@]}" build api >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; fail "build"; }
rm -f "$ca_copy"

# The image's promises: non-root, no torch, no compilers, only the CPU onnxruntime, and
# exactly the repository's models/ baked in (the stack below serves MODELS_DIR instead).
expected_models=$(cd models && for f in *.onnx; do if [ -e "$f" ]; then printf '%s ' "$f"; fi; done)
docker run --rm --entrypoint python -e "EXPECTED=$expected_models" "$GANSERVE_IMAGE" -c '
import importlib.metadata as md, importlib.util as iu, os, shutil
names = {d.metadata["Name"].lower() for d in md.distributions()}
assert os.getuid() != 0, "runs as root"
assert iu.find_spec("torch") is None and iu.find_spec("training") is None, "torch/training in image"
assert not any(shutil.which(c) for c in ("gcc", "cc", "c++")), "a compiler in the image"
assert "onnxruntime" in names and "onnxruntime-gpu" not in names, names
baked = sorted(f for f in os.listdir("/opt/ganserve/models") if f.endswith(".onnx"))
assert baked == sorted(os.environ["EXPECTED"].split()), (baked, os.environ["EXPECTED"])
' || fail "image checks"
log "image checks passed: non-root, no torch, no compiler, CPU onnxruntime, models/ baked in"

# ---- 4. the stack ----------------------------------------------------------------------------
log "compose up: api on $api, prometheus on $prom"
"${compose[@]}" up -d --no-build api prometheus >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "compose up"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for $what"
        sleep 1
    done
}
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$("${compose[@]}" ps -q api)")" = healthy ]; }
wait_for 180 "the api's /readyz" curl -fsS "$api/readyz"
wait_for 60 "the compose healthcheck to report healthy" healthy
log "api ready: $(curl -fsS "$api/readyz")"

# The running container (reliability): its root filesystem is read-only, /tmp is the only
# writable place, and it runs as the image's non-root user (docker-compose.yml, read_only).
"${compose[@]}" exec -T api python -c '
import os, tempfile
assert os.getuid() == 10001, os.getuid()
for path in ("/opt/ganserve/probe", "/probe"):
    try:
        open(path, "w")
    except OSError as exc:
        assert exc.errno == 30, exc  # EROFS: read-only file system
    else:
        raise AssertionError(f"{path} is writable")
with tempfile.NamedTemporaryFile(dir="/tmp"):
    pass
' || fail "container not read-only, or not non-root"
log "running container: read-only root, writable /tmp only, uid 10001"

# ---- 5. the quick start's request -----------------------------------------------------------
curl -fsS -X POST "$api/samples?n=16&format=png" -D "$work/headers" -o "$work/samples.png"
"$python" - "$work/samples.png" <<'EOF' || fail "POST /samples?n=16&format=png is not a PNG"
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
assert width >= 4 * 28 and height >= 4 * 28, (width, height)  # a grid of 16 28x28 images
print(f"PNG grid {width}x{height}")
EOF
grep -qi '^x-seed:' "$work/headers" || fail "no X-Seed header"
curl -fsS -X POST "$api/samples?n=16&seed=7" -o "$work/samples.json"
"$python" -c 'import json, sys; r = json.load(open(sys.argv[1])); assert len(r["images"]) == 16, r.keys()' \
    "$work/samples.json" || fail "POST /samples?n=16 (JSON) did not return 16 images"
log "POST /samples?n=16: a PNG grid and 16 JSON images"

# ---- 6. Prometheus scrapes the api through the compose network --------------------------------
promql() {  # promql QUERY PYTHON_CONDITION_ON_RESULT
    curl -fsS --get "$prom/api/v1/query" --data-urlencode "query=$1" \
        | "$python" -c "import json, sys; r = json.load(sys.stdin)['data']['result']; sys.exit(0 if ($2) else 1)"
}
wait_for 90 'Prometheus to report up{job="ganserve"} == 1' \
    promql 'up{job="ganserve"}' 'r and all(s["value"][1] == "1" for s in r)'
wait_for 30 "Prometheus to see the 32 images" \
    promql 'sum(gan_images_generated_total{job="ganserve"})' 'r and float(r[0]["value"][1]) >= 32'
curl -fsS "$prom/api/v1/rules" | "$python" -c '
import json, sys
rules = [r for g in json.load(sys.stdin)["data"]["groups"] for r in g["rules"]]
assert len(rules) >= 5 and all(r["health"] == "ok" for r in rules), [(r["name"], r["health"], r.get("lastError")) for r in rules]
' || fail "alert rules not loaded or failing in Prometheus"
log "Prometheus: api target up, gan_images_generated_total >= 32, alert rules loaded and healthy"

log "PASS"
