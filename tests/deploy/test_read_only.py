"""The service on a read-only root filesystem, as the container runs it.

The manifests ask for it (compose `read_only: true` with a /tmp tmpfs, Kubernetes
`readOnlyRootFilesystem: true` with an emptyDir on /tmp; both checked statically here and in
test_compose.py / test_k8s.py). This test runs the real `python -m service` in a private
mount namespace whose root is remounted read-only, with only a fresh tmpfs on /tmp, the
models bind-mounted read-only: it must start, warm up and serve. What only the container
e2e (test_e2e.py, deploy/e2e/e2e.sh) verifies: the image's own filesystem, its non-root user
(10001), and Docker's / Kubernetes' enforcement of the flags.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.conftest import REPO, require
from tests.service.conftest import poll
from tests.support.ports import free_port

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

# In the namespace: models read-only at /srv, a new tmpfs on /tmp, then / read-only; prove
# the root refuses writes, then become the service. A checkout (and its venv) that lives under
# /tmp, as a CI clone may, is bound back in place over the new tmpfs, through /mnt.
READ_ONLY_ROOT = """
set -eu
mount --make-rprivate /
mount --bind "$MODELS" /srv
mount --bind /tmp /mnt
mount -t tmpfs -o size=64m,mode=1777 tmpfs /tmp
for keep in $KEEP; do
    mkdir -p "$keep"
    mount --bind "/mnt${keep#/tmp}" "$keep"
    mount -o remount,bind,ro "$keep"
done
mount -o remount,bind,ro /srv
mount -o remount,bind,ro /
if touch "$PROBE" 2>/dev/null; then echo "root is writable"; exit 3; fi
echo "root is read-only"
exec "$PYTHON" -m service --host 127.0.0.1 --port "$PORT"
"""


def test_the_service_starts_and_serves_on_a_read_only_root(tiny_model_dir: Path) -> None:
    unshare = require("unshare")
    port = free_port()
    env = {
        **os.environ,
        "MODELS": str(tiny_model_dir),
        "PROBE": str(REPO / ".read-only-probe"),
        "PYTHON": sys.executable,
        "PORT": str(port),
        "PYTHONPATH": str(REPO),
        "KEEP": " ".join(
            str(path) for path in (REPO, Path(sys.prefix)) if Path("/tmp") in path.parents
        ),
        "GAN_MODEL_DIR": "/srv",
        "GAN_PROVIDERS": "cpu",
        "GAN_INTRA_OP_THREADS": "1",
        "GAN_MAX_BATCH": "4",
    }
    process = subprocess.Popen(
        [unshare, "--mount", "sh", "-c", READ_ONLY_ROOT],  # one process: sh execs the service,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"root is read-only\n"

        def ready() -> bool:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                return httpx.get(url + "/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        poll(ready, timeout=90)
        response = httpx.post(url + "/samples", params={"n": 4, "format": "png"}, timeout=30)
        assert response.status_code == 200
        assert response.content.startswith(b"\x89PNG")
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert "Read-only file system" not in output and "Traceback" not in output, output
    assert not (REPO / ".read-only-probe").exists()


def test_compose_runs_the_api_read_only_with_only_tmp_writable() -> None:
    api = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["api"]
    assert api["read_only"] is True
    assert [mount.split(":")[0] for mount in api["tmpfs"]] == ["/tmp"]
    assert all(volume.endswith(":ro") for volume in api["volumes"])
    assert api["cap_drop"] == ["ALL"] and "no-new-privileges:true" in api["security_opt"]
    assert "user" not in api  # the image's non-root USER 10001 (test_dockerfile.py)


@pytest.mark.parametrize("variant", ["base", "overlays/gpu"])
def test_kubernetes_pods_are_read_only_with_only_an_emptydir_writable(variant: str) -> None:
    kubectl = require("kubectl")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(REPO / "deploy/k8s" / variant)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    assert api["securityContext"]["readOnlyRootFilesystem"] is True
    assert api["securityContext"]["allowPrivilegeEscalation"] is False
    assert api["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in api["volumeMounts"]:
        writable = not mount.get("readOnly", False)
        assert not writable or "emptyDir" in volumes[mount["name"]], mount
