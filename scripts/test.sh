#!/usr/bin/env bash
# The whole test set-up on a fresh Debian or Ubuntu machine, then the whole test suite, then
# what the suite left in Docker removed again:
#
#   scripts/test.sh                  # set up, python -m pytest, clean up
#   scripts/test.sh tests/service -x # the same; the arguments go to pytest
#   scripts/test.sh --keep           # keep the test images and a dockerd started here
#
# 1. System packages (apt-get; sudo when not root): Python's venv, the Fashion-MNIST data
#    set, Prometheus (metrics tests), shellcheck and curl (deploy scripts), Chromium and its
#    driver (the gallery page's browser test), wrk (load generator), and a Docker engine with
#    docker-compose and debootstrap (the container end-to-end test); dockerd is started when
#    none answers.
# 2. A virtual environment, .venv.
# 3. torch's CPU build: from PyTorch's CPU index when it answers within seconds, else a wheel
#    pip already has at hand (a wheelhouse in its find-links), else PyPI's default build,
#    which on Linux x86_64 is the multi-GB CUDA one. It says which build it installed.
# 4. The project with its extras: pip install -e '.[train,dev]'.
# 5. The suite with CI set, so a test whose tool is missing fails instead of skipping.
# 6. On the way out, whether pytest passed or not (its exit status is the script's): unless
#    --keep, the images and build cache the suite added go (deploy/e2e/docker-leftovers.sh)
#    and a dockerd started in step 1 is stopped; then how long it took and what .venv and
#    Docker take on disk.
#
# Running it again is quick: apt, venv and pip skip what is already there (without --keep,
# the container test builds its images again, a few minutes).
#
# Run, it does all of this (`main`); sourced, it only defines the functions (the tests).
set -euo pipefail

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
step() { printf '\n== %s\n' "$*"; }

# --keep is this script's; every other argument goes to pytest, in order.
split_arguments() {
    keep=0
    pytest_args=()
    local argument
    for argument in "$@"; do
        if [ "$argument" = --keep ]; then keep=1; else pytest_args+=("$argument"); fi
    done
}

# -- 1. system packages ----------------------------------------------------------------------
install_system_packages() {
    local packages missing package distro
    packages=(
        python3 python3-venv
        dataset-fashion-mnist prometheus shellcheck curl wrk
        docker.io docker-compose debootstrap
    )
    # Debian names the browser chromium + chromium-driver, Ubuntu chromium-browser +
    # chromium-chromedriver.
    # shellcheck disable=SC1091  # a system file
    distro=$(. /etc/os-release && echo "${ID:-} ${ID_LIKE:-}")
    if [[ " $distro " == *" ubuntu "* ]]; then
        packages+=(chromium-browser chromium-chromedriver)
    else
        packages+=(chromium chromium-driver)
    fi
    missing=()
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        step "apt-get install ${missing[*]}"
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# No init system starts dockerd on CI machines; tests/deploy/test_e2e.py needs it running
# (and fails, saying so, if it is not: the other tests still run). The pid of a dockerd
# started here, and what Docker holds before the tests, go to $state for `finish`.
start_dockerd() {
    $SUDO deploy/e2e/start-dockerd.sh "$state/dockerd.pid" \
        || echo "dockerd did not start: tests/deploy/test_e2e.py will fail"
    $SUDO deploy/e2e/docker-leftovers.sh record "$state"
}

# -- 2. the virtual environment --------------------------------------------------------------
create_venv() {
    [ -x .venv/bin/python ] || { step "python3 -m venv .venv"; python3 -m venv .venv; }
    # shellcheck disable=SC1091  # created just above
    . .venv/bin/activate
}

# -- 3. torch, the CPU build -----------------------------------------------------------------
install_torch() {
    local cpu_index torch
    cpu_index=https://download.pytorch.org/whl/cpu
    torch=$(python - <<'EOF'
import re, tomllib
extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["train"]
print(next(r for r in extra if re.match(r"torch\b", r)))
EOF
)
    if python -c 'import torch' 2>/dev/null; then
        :  # installed already (a re-run): keep whichever build it is
    elif curl -fsS --connect-timeout 5 --max-time 20 -o /dev/null "$cpu_index/torch/" 2>/dev/null; then
        step "$torch from PyTorch's CPU index"
        pip install -q --index-url "$cpu_index" "$torch"
    elif pip install -q --no-index --no-deps "$torch" 2>/dev/null; then
        step "$torch from a local wheel (PyTorch's CPU index is unreachable)"
        pip install -q "$torch"  # its dependencies; torch itself is satisfied and stays
    else
        step "$torch from PyPI: PyTorch's CPU index is unreachable and no local wheel fits"
        echo "warning: on Linux x86_64 this is the multi-GB CUDA build" >&2
        pip install -q "$torch"
    fi
    python -W ignore -c 'import torch; print(f"torch {torch.__version__}:", f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build")'
}

# -- 6. the way out --------------------------------------------------------------------------
# The EXIT trap: runs however the script ends, and ends it with the status it was ending with
# (pytest's, when pytest ran).
finish() {
    local status=$?
    set +e
    if [ "$keep" = 1 ]; then
        step "--keep: the test images and build cache stay, and so does a dockerd started here"
    elif [ -n "$(ls -A "$state")" ]; then
        step "removing what the tests added to Docker"
        $SUDO deploy/e2e/docker-leftovers.sh remove "$state" || echo "some of it stayed (above)"
    fi
    rm -rf "$state"
    step "took $((SECONDS / 60)) min $((SECONDS % 60)) s; on disk: .venv $(disk_use .venv), Docker $(docker_disk_use)"
    exit "$status"
}

disk_use() { if [ -e "$1" ]; then du -sh "$1" | cut -f1; else echo none; fi; }

# Docker's own account while an engine answers; else its data directory (/var/lib/docker
# unless DOCKERD_FLAGS moved it), e.g. after the engine started here was stopped.
docker_disk_use() {
    if docker info >/dev/null 2>&1; then
        docker system df --format '{{.Size}} {{.Type}}' | paste -sd, - | sed 's/,/, /g'
    elif [ -d /var/lib/docker ]; then
        echo "$($SUDO du -sxh /var/lib/docker | cut -f1) in /var/lib/docker (no engine running)"
    else
        echo none
    fi
}

main() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    export DEBIAN_FRONTEND=noninteractive
    export CI="${CI:-1}"
    # Byte-compiling every installed file (torch is large) costs minutes; imports compile what
    # they use.
    export PIP_NO_COMPILE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
    split_arguments "$@"
    state=$(mktemp -d)
    trap finish EXIT
    trap 'exit 130' INT  # so that the EXIT trap runs on Ctrl-C and SIGTERM too
    trap 'exit 143' TERM

    install_system_packages
    start_dockerd
    create_venv
    install_torch

    # -- 4. the project with its extras ------------------------------------------------------
    step "pip install -e '.[train,dev]'"
    pip install -q -e '.[train,dev]'

    # -- 5. the suite ------------------------------------------------------------------------
    step "python -m pytest ${pytest_args[*]}"
    python -m pytest "${pytest_args[@]}"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
