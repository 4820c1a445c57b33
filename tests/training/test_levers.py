"""The recipe levers: each trains, exports with parity, and does what it says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from tests.training.helpers import load_state, saved_before_the_levers, tiny_config
from training.augment import cutout, diff_augment, translation
from training.distributed import DistContext
from training.ema import standing_statistics
from training.export import export
from training.models import ConditionalBatchNorm, ModelSpec, build_models
from training.train import TrainingState, _gan_step, _Run, _setup, train

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

LEVERS: dict[str, dict[str, object]] = {
    "hinge": {"loss": "hinge"},
    "spectral-norm": {"spectral_norm": True},
    "cbn": {"g_cond": "cbn"},
    "nearest": {"upsample": "nearest"},
    "ttur": {"g_lr": 1e-4, "d_lr": 4e-4},
    "diffaugment": {"diffaugment": "translation,cutout"},
    "standing-stats": {"standing_stats": 4},
    "bf16": {"precision": "bf16"},
    "reuse-fake": {"reuse_fake": True},
    "bf16-mlp": {"arch": "mlp", "precision": "bf16", "g_width": 16, "d_width": 16},
    # the 2014 paper's setup stays trainable: MLPs, the minimax objective, k = 2 D steps
    "paper-mlp": {"arch": "mlp", "loss": "minimax", "d_steps": 2, "g_width": 16, "d_width": 16},
    "everything": {
        "loss": "hinge",
        "spectral_norm": True,
        "g_cond": "cbn",
        "upsample": "nearest",
        "g_lr": 1e-4,
        "d_lr": 4e-4,
        "diffaugment": "translation,cutout",
        "standing_stats": 4,
        "precision": "bf16",
        "reuse_fake": True,
    },
}


def _spec(**overrides: object) -> ModelSpec:
    values: dict[str, object] = {
        "arch": "dcgan",
        "latent_dim": 8,
        "image_shape": (1, 28, 28),
        "num_classes": 10,
        "conditional": True,
        "g_width": 4,
        "d_width": 4,
    }
    return ModelSpec(**(values | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize("lever", list(LEVERS))
def test_each_lever_trains_and_exports_with_parity(tmp_path: Path, lever: str) -> None:
    run = tmp_path / "run"
    train(tiny_config(run, conditional=True, max_steps=3, **LEVERS[lever]))
    metadata = export(run, tmp_path / "g.onnx")  # export fails above its parity limit
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    (images,) = session.run(
        ["image"], {"z": np.zeros((2, 8), np.float32), "label": np.array([0, 9], np.int64)}
    )
    assert images.shape == (2, 1, 28, 28) and np.isfinite(images).all()
    saved = json.loads((run / "config.json").read_text())
    assert {key: saved[key] for key in LEVERS[lever]} == LEVERS[lever]
    assert float(metadata["parity_max_abs_diff"]) <= 1e-4


def test_spectral_norm_holds_every_d_layer_at_unit_norm_and_d_has_no_batchnorm() -> None:
    _, discriminator = build_models(_spec(spectral_norm=True))
    for _ in range(30):  # power iterations run in train-mode forward passes
        discriminator(torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,)))
    layers = [
        m for m in discriminator.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding)
    ]
    assert len(layers) == 4  # two convs, the logit, the projection
    for layer in layers:
        weight = layer.weight.detach().flatten(1)
        assert torch.linalg.matrix_norm(weight, ord=2) == pytest.approx(1.0, abs=0.05)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())


def test_conditional_batchnorm_carries_the_label_instead_of_concatenation() -> None:
    generator, _ = build_models(_spec(g_cond="cbn"))
    assert not hasattr(generator, "embed")
    norms = [m for m in generator.modules() if isinstance(m, ConditionalBatchNorm)]
    assert len(norms) == 2
    nn.init.normal_(norms[0].bias.weight, 0.0, 1.0)  # make the per-class bias visible
    generator.eval()
    images = generator(torch.randn(1, 8).repeat(2, 1), torch.tensor([0, 1]))
    assert not torch.allclose(images[0], images[1])


def test_nearest_upsampling_uses_no_transposed_convolutions() -> None:
    generator, _ = build_models(_spec(upsample="nearest"))
    kinds = {type(m) for m in generator.modules()}
    assert nn.ConvTranspose2d not in kinds and nn.Upsample in kinds
    assert generator(torch.randn(3, 8), torch.zeros(3, dtype=torch.long)).shape == (3, 1, 28, 28)


def test_ttur_gives_each_optimizer_its_own_learning_rate(run_dir: Path) -> None:
    train(tiny_config(run_dir, max_steps=1, g_lr=1e-4, d_lr=4e-4))
    state = load_state(run_dir)
    assert state["opt_generator"]["param_groups"][0]["lr"] == 1e-4  # type: ignore[index]
    assert state["opt_discriminator"]["param_groups"][0]["lr"] == 4e-4  # type: ignore[index]


def test_translation_shifts_whole_images_with_zero_fill() -> None:
    torch.manual_seed(0)
    images = torch.ones(64, 1, 8, 8)
    shifted = translation(images)
    assert shifted.shape == images.shape
    # shifts of up to 1 pixel: at most one zero row and one zero column per image
    assert set(shifted.sum(dim=(1, 2, 3)).tolist()) <= {64.0, 56.0, 49.0}
    assert len(set(shifted.sum(dim=(1, 2, 3)).tolist())) > 1


def test_cutout_zeroes_one_square_of_half_the_side() -> None:
    torch.manual_seed(0)
    cut = cutout(torch.ones(32, 3, 8, 8))
    zeros = (cut[:, 0] == 0).sum(dim=(1, 2))
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4×4 square, clipped at the border
    assert torch.equal(cut[:, 0], cut[:, 2])  # the same square in every channel


def test_diffaugment_lets_gradients_through_to_the_generator() -> None:
    images = torch.randn(4, 1, 8, 8, requires_grad=True)
    diff_augment(images, ("translation", "cutout")).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_standing_statistics_change_a_copy_and_not_the_generator() -> None:
    generator, _ = build_models(_spec())
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    rng_before = torch.get_rng_state()
    standing = standing_statistics(generator, 8, 10, True, passes=3, batch=16)
    assert torch.equal(torch.get_rng_state(), rng_before)  # training's noise stream untouched
    after = generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    mean = standing.state_dict()["project.1.running_mean"]
    assert not torch.equal(mean, before["project.1.running_mean"])
    assert not standing.training


def test_standing_statistics_change_the_export_but_not_the_training(tmp_path: Path) -> None:
    plain, standing = tmp_path / "plain", tmp_path / "standing"
    train(tiny_config(plain, max_steps=4, standing_stats=0))
    train(tiny_config(standing, max_steps=4, standing_stats=4))
    for key in ("generator", "generator_ema", "discriminator"):
        a, b = load_state(plain)[key], load_state(standing)[key]
        assert all(torch.equal(a[k], b[k]) for k in a)  # type: ignore[index, union-attr]
    export(plain, tmp_path / "plain.onnx")
    export(standing, tmp_path / "standing.onnx")
    z = {"z": np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)}
    outputs = [
        ort.InferenceSession(
            str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"]
        ).run(["image"], z)[0]
        for name in ("plain", "standing")
    ]
    assert not np.allclose(outputs[0], outputs[1], atol=1e-4)


def test_a_checkpoint_saved_before_the_levers_existed_exports_as_before(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_config(run, max_steps=2, conditional=True, standing_stats=0))  # as before
    reference = export(run, tmp_path / "now.onnx")
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    saved_before_the_levers(state)
    torch.save(state, tmp_path / "old.pt")
    old = export(tmp_path / "old.pt", tmp_path / "old.onnx")
    assert old["config_hash"] == reference["config_hash"]
    z = {"z": np.ones((2, 8), np.float32), "label": np.array([1, 2], np.int64)}
    outputs = [
        ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"]).run(
            ["image"], z
        )[0]
        for name in ("now.onnx", "old.onnx")
    ]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def _set_up(run_dir: Path, **overrides: object) -> tuple[_Run, TrainingState]:
    """A tiny conditional run's set-up on the CPU, ready for `_gan_step`."""
    config = tiny_config(run_dir, conditional=True, **overrides).resolve()
    return _setup(config, None, torch.device("cpu"), DistContext(), overwrite=True)


def _generator_forwards_in_one_step(run_dir: Path, **overrides: object) -> int:
    run, state = _set_up(run_dir, **overrides)
    calls: list[int] = []
    state.generator.register_forward_hook(lambda *_: calls.append(1))
    _gan_step(run, state, torch.tensor(list(run.sampler)))
    return len(calls)


def test_reuse_fake_runs_the_generator_once_per_step_instead_of_k_plus_one(
    tmp_path: Path,
) -> None:
    assert _generator_forwards_in_one_step(tmp_path / "fresh", d_steps=2) == 3
    assert _generator_forwards_in_one_step(tmp_path / "reused", d_steps=2, reuse_fake=True) == 2


def test_bf16_keeps_fp32_weights_and_lays_a_cpu_dcgan_out_channels_last(tmp_path: Path) -> None:
    run, state = _set_up(tmp_path / "run", precision="bf16")
    statistics = _gan_step(run, state, torch.tensor(list(run.sampler)))
    assert statistics.dtype == torch.float32 and torch.isfinite(statistics).all()
    convolutions = [
        m.weight
        for m in (*state.generator.modules(), *state.discriminator.modules())
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    assert convolutions and all(
        w.dtype == torch.float32 and w.is_contiguous(memory_format=torch.channels_last)
        for w in convolutions
    )
    assert run.images.is_contiguous(memory_format=torch.channels_last)
