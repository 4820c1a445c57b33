#!/bin/sh
# Install the service into the venv /opt/venv, inside a build stage of the Dockerfile.
#
#   install.sh deps cpu|gpu   the runtime dependencies, with exactly one onnxruntime wheel
#   install.sh project        the ganserve package itself (core/ and service/), without dependencies
#
# Two steps so that the dependency layer stays cached while only service/ changes.
set -eu

here=$(dirname "$0")
venv=/opt/venv

# Behind a TLS-intercepting proxy pip needs the proxy's CA: any *.pem in build-ca/ (a
# git-ignored folder of the build context, see its README) becomes pip's CA bundle. It lives
# in the build stage only; the final image never contains it.
if ls "$here"/build-ca/*.pem >/dev/null 2>&1; then
    cat "$here"/build-ca/*.pem >/tmp/build-ca.pem
    export PIP_CERT=/tmp/build-ca.pem
fi
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    PIP_ROOT_USER_ACTION=ignore

case "$1" in
deps)
    python3 -m venv "$venv"
    python3 "$here/requirements.py" pyproject.toml "$2" >/tmp/requirements.txt
    "$venv/bin/pip" install --quiet --requirement /tmp/requirements.txt
    ;;
project)
    "$venv/bin/pip" install --quiet --no-deps .
    # training/ is not in the build context (no torch in the image), so the training
    # console scripts the wheel declares could only fail: leave just gan-serve.
    rm -f "$venv/bin/gan-train" "$venv/bin/gan-export" "$venv/bin/gan-evaluate"
    # Fail the build here, not at container start, if the service does not import.
    "$venv/bin/python" -c 'import onnxruntime, service.__main__, service.workers.worker; print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())'
    ;;
*)
    echo "usage: install.sh deps cpu|gpu | install.sh project" >&2
    exit 2
    ;;
esac
