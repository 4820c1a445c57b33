# ganserve: the sampling service (core/ + service/ + models/) in a container.
# No torch, no compilers, a non-root user; it starts `gan-serve` on port 8000.
#
#   docker build -t ganserve .                       # CPU image (onnxruntime)
#   docker build --target gpu -t ganserve:gpu .      # CUDA image (onnxruntime-gpu)
#
# Build arguments:
#   BASE_IMAGE  the CPU image's base: any Debian-like image with python3 (>= 3.11) and venv,
#               e.g. a mirrored python:3.11-slim, or deploy/images/build-base-image.sh's.
#   CUDA_IMAGE  the GPU image's base: an NVIDIA CUDA runtime with cuDNN whose CUDA major
#               version is the one onnxruntime-gpu is built for (CUDA 13 for its current
#               releases; docs/deploy.md says how to check).
# Behind a TLS-intercepting proxy, put its CA bundle into deploy/docker/build-ca/ first
# (see the README there); pip uses it in the build stages only.
#
# Stage order matters: the classic (non-BuildKit) builder builds every stage up to the target,
# so the CPU stages come first and `--target cpu` never touches the CUDA base. The last stage
# makes the CPU image the default target.

ARG BASE_IMAGE=python:3.11-slim
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------
# cpu-builder: /opt/venv with the runtime dependencies, the CPU onnxruntime wheel and ganserve
FROM ${BASE_IMAGE} AS cpu-builder
WORKDIR /src
COPY deploy/docker/ deploy/docker/
COPY pyproject.toml ./
RUN sh deploy/docker/install.sh deps cpu
COPY README.md ./
COPY core/ core/
COPY service/ service/
RUN sh deploy/docker/install.sh project

# ---------------------------------------------------------------------------------------------
# cpu: the image `docker compose up` runs
FROM ${BASE_IMAGE} AS cpu
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ganserve
COPY --from=cpu-builder /opt/venv /opt/venv
# The shipped generators. Read-only for the service user; a mount over this path replaces them.
COPY models/ /opt/ganserve/models/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GAN_MODEL_DIR=/opt/ganserve/models \
    GAN_PROVIDERS=cpu \
    GAN_WORKERS=auto
USER 10001:10001
WORKDIR /opt/ganserve
# 8000: HTTP; 8001: v2 gRPC once GAN_GRPC_PORT=8001 is set (compose and the manifests set it).
EXPOSE 8000 8001
# GAN_WORKERS=auto: one worker per usable core; 0.0.0.0 so the published port reaches it.
CMD ["gan-serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------
# gpu-base: the CUDA runtime plus the distribution's python3 (no compilers, no pip tooling)
FROM ${CUDA_IMAGE} AS gpu-base
# Versions come from the CUDA image's Ubuntu release, which CUDA_IMAGE pins.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# gpu-builder: the same venv, with onnxruntime-gpu as the only onnxruntime
FROM gpu-base AS gpu-builder
WORKDIR /src
COPY deploy/docker/ deploy/docker/
COPY pyproject.toml ./
RUN sh deploy/docker/install.sh deps gpu
COPY README.md ./
COPY core/ core/
COPY service/ service/
RUN sh deploy/docker/install.sh project

# gpu: run with the NVIDIA container toolkit (`--gpus all`, or docker-compose.gpu.yml)
FROM gpu-base AS gpu
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ganserve
COPY --from=gpu-builder /opt/venv /opt/venv
COPY models/ /opt/ganserve/models/
# CUDA first; without a usable GPU the service falls back to the CPU, warns, and sets
# gan_provider_fallback (which alerts.yml turns into an alert).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GAN_MODEL_DIR=/opt/ganserve/models \
    GAN_PROVIDERS=cuda,cpu \
    GAN_WORKERS=auto
USER 10001:10001
WORKDIR /opt/ganserve
EXPOSE 8000 8001
CMD ["gan-serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------
# The default target (the last stage): the CPU image.
FROM cpu
