"""Standing BatchNorm statistics for a trained generator, as its run's config asks."""

from __future__ import annotations

from typing import Any

from torch import nn

from training.config import TrainConfig
from training.ema import standing_statistics
from training.models import ModelSpec


def with_standing_statistics(
    generator: nn.Module, spec: ModelSpec, saved_config: dict[str, Any]
) -> nn.Module:
    """`generator` with BatchNorm statistics re-estimated when the run used
    ``--standing-stats N`` (the same passes, batch and seed as its sample grids), else
    `generator` itself. Configs saved before the option existed mean 0 (off)."""
    config = TrainConfig.from_dict(saved_config).resolve()
    if not config.standing_stats:
        return generator
    return standing_copy(generator, spec, config)


def standing_copy(generator: nn.Module, spec: ModelSpec, config: TrainConfig) -> nn.Module:
    """An eval-mode copy of `generator` with the standing statistics `config` asks for (a
    plain copy when it asks for none): its passes, its batch and its seed."""
    assert config.batch_size is not None and config.standing_stats is not None
    return standing_statistics(
        generator,
        spec.latent_dim,
        spec.num_classes,
        spec.conditional,
        config.standing_stats,
        config.batch_size,
        seed=config.seed,
    )
