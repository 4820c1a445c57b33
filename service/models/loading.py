"""Loading one model for serving: its session, what an image costs, the batch it can run, and
its warm-up.

    loaded = load_model(spec, settings, budget_bytes)   # in a thread: it runs the model

The steps, in order: open the onnxruntime sessions (checked against the contract reading made
at start-up), price one image in bytes (held by a request, and working inside a run), fit the
max batch to the memory left for requests and to `GAN_MAX_RUN_MS`, pad the session to the
sizes it will run, and warm every size up; with CUDA graphs where GAN_CUDA_GRAPHS and the
provider allow them, again without where onnxruntime refuses them (`with_graph_fallback`).
What comes out is plain values; the pipeline is built from them (`service.pipeline.served`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import onnx
import onnxruntime as ort

from core.contract import GeneratorSpec, ModelError, check_all
from service.models import files, generator, memory
from service.models.generator import Generator
from service.models.memory import MB, ImageCost
from service.models.providers import PROVIDERS, choose_providers
from service.settings import Settings

log = logging.getLogger("service")

CUDA = PROVIDERS["cuda"]
T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModel:
    """A warmed-up session and the sizes it is served at."""

    generator: Generator
    cost: ImageCost
    max_batch: int  # GAN_MAX_BATCH, or less where the memory budget or GAN_MAX_RUN_MS demands it
    reserve_bytes: int  # what its runs hold at most: taken from the memory budget
    images_per_s: float  # measured in the warm-up, over all run slots: the first drain rate


def read_specs(settings: Settings) -> list[GeneratorSpec]:
    """Every model file the settings name, read and checked against the contract."""
    paths = files.discover(settings.model_dir, settings.model_path)
    if not paths:
        raise ModelError(f"no *.onnx models in {settings.model_dir} (GAN_MODEL_DIR)")
    return check_all(paths)


def load_model(spec: GeneratorSpec, settings: Settings, budget_bytes: int) -> LoadedModel:
    """Open, size and warm one model; `budget_bytes` is the memory still free for requests."""
    s = settings
    on_cuda = choose_providers(s.providers, ort.get_available_providers()).names[0] == CUDA
    loaded = with_graph_fallback(
        lambda graphs: _load(spec, settings, budget_bytes, graphs),
        s.cuda_graphs,
        on_cuda,
        spec.name,
    )
    log.info("model %s from %s: %s", spec.name, spec.path, describe(loaded.generator))
    return loaded


def describe(gen: Generator) -> str:
    """Where and how a model runs, for its load line in the log."""
    where = gen.provider
    if gen.devices:
        where += " on GPU" + ("s " if len(gen.devices) > 1 else " ")
        where += ",".join(str(device) for device in gen.devices)
    graphs = "on" if gen.cuda_graphs else "off"
    threads = gen.intra_op_threads or "onnxruntime's default"
    return (
        f"provider {where}, CUDA graphs {graphs}, "
        f"{gen.slots} run slots of {threads} intra-op threads"
    )


def with_graph_fallback(attempt: Callable[[bool], T], setting: str, on_cuda: bool, name: str) -> T:
    """`attempt(cuda_graphs)`: with CUDA graphs where GAN_CUDA_GRAPHS (`setting`) and the
    provider allow them, else without.

    onnxruntime refuses graphs for some models (a node on the CPU provider, a kernel that
    synchronises while the graph is captured), when the session opens or in the warm-up's
    capture: then `auto` warns once with its reason and loads the model again without them,
    and `on` fails the load with that reason.
    """
    if setting == "off" or not on_cuda:
        return attempt(False)
    try:
        return attempt(True)
    except generator.RuntimeFailed as exc:  # not a bad setting or a memory budget
        reason = generator.runtime_error_line(exc)
        if setting == "on":
            raise ModelError(
                f"{reason} (with GAN_CUDA_GRAPHS=on; auto runs such a model without them)"
            ) from exc
        log.warning("model %s: CUDA graphs off, onnxruntime cannot use them: %s", name, reason)
    return attempt(False)


def _load(
    spec: GeneratorSpec, settings: Settings, budget_bytes: int, cuda_graphs: bool
) -> LoadedModel:
    s = settings
    gen = generator.load(
        spec.path,
        s.providers,
        s.intra_op_threads,
        generator.warmup_sizes(s.max_batch),
        run_slots=s.run_slots,
        spec=spec,
        cuda_graphs=cuda_graphs,
        devices=s.devices,
    )
    cost = ImageCost(
        held=memory.held_bytes(spec.image_shape, spec.latent_dim),
        working=memory.working_bytes(onnx.load(str(spec.path)), spec.image_shape),
    )
    max_batch = _fit_memory(spec, gen, cost, settings, budget_bytes)
    if s.max_run_ms > 0:
        max_batch = _fit_run_time(gen, max_batch, s.max_run_ms)
    if max_batch < s.max_batch:
        gen.set_pad_to(generator.warmup_sizes(max_batch))
    one_slot = gen.warm_up(generator.warmup_sizes(max_batch), concurrent=gen.slots)  # images/s
    return LoadedModel(
        generator=gen,
        cost=cost,
        max_batch=max_batch,
        reserve_bytes=memory.run_reserve(max_batch, gen.slots, cost),
        images_per_s=one_slot * gen.slots,
    )


def _fit_memory(
    spec: GeneratorSpec, gen: Generator, cost: ImageCost, settings: Settings, budget_bytes: int
) -> int:
    """GAN_MAX_BATCH, or the largest batch whose runs fit beside requests in the budget."""
    s = settings
    max_batch = memory.fit_max_batch(s.max_batch, gen.slots, cost, budget_bytes)
    if max_batch == 0:
        raise ModelError(
            f"{spec.path}: one image needs "
            f"{(memory.run_reserve(1, gen.slots, cost) + cost.held) / MB:.1f} MB "
            f"on {gen.slots} run slots; GAN_MEMORY_BUDGET_MB={s.memory_budget_mb} leaves "
            f"{budget_bytes / MB:.1f} MB"
        )
    if max_batch < s.max_batch:
        log.warning(
            "model %s: max batch lowered from %d to %d to fit GAN_MEMORY_BUDGET_MB=%d "
            "(%.2f MB per image in a run, %d run slots)",
            spec.name,
            s.max_batch,
            max_batch,
            s.memory_budget_mb,
            cost.working / MB,
            gen.slots,
        )
    return max_batch


def _fit_run_time(gen: Generator, max_batch: int, limit_ms: float) -> int:
    """`max_batch`, or less where a run that size would take longer than GAN_MAX_RUN_MS: a run
    whose clients have all gone stops only between two of the model's nodes, so a short run
    frees its slot for live requests quickly (docs/benchmarks.md, "Short runs")."""
    fitted = gen.largest_batch_within(generator.warmup_sizes(max_batch), limit_ms / 1000)
    if fitted < max_batch:
        log.info(
            "model %s: max batch %d, the largest whose run takes at most GAN_MAX_RUN_MS=%g",
            gen.spec.name,
            fitted,
            limit_ms,
        )
    return fitted
