"""The job of one `/samples` request: seeded inputs row by row, the body in its format.

Both callables run in a run slot's thread (`service.pipeline`): the inputs of a large request
are built run by run, never before the request is admitted.
"""

from __future__ import annotations

from service import encoding, seeding
from service.contract import GeneratorSpec
from service.encoding import Format
from service.pipeline import Job, Labels, Latents, Pixels


def sample_job(spec: GeneratorSpec, fmt: Format, seed: int, n: int, label: int | None) -> Job:
    """n images of `spec` from request seed `seed` (labels random unless `label` is given)."""

    def rows(start: int, stop: int) -> tuple[Latents, Labels | None]:
        inputs = seeding.make_rows(seed, start, stop, spec.latent_dim, spec.num_classes, label)
        return inputs.z, inputs.labels

    def encode(pixels: Pixels) -> bytes:
        seeds: list[int] = []
        labels: list[int] | None = None
        if fmt == "json":  # only JSON lists each image's seed and label: rebuild them here
            inputs = seeding.make_rows(seed, 0, n, 1, spec.num_classes, label)
            seeds = inputs.seeds.tolist()
            labels = None if inputs.labels is None else inputs.labels.tolist()
        return encoding.encode(fmt, pixels, model=spec.name, seed=seed, seeds=seeds, labels=labels)

    return Job(n=n, rows=rows, encode=encode, format=fmt, seeded=(seed, label))
