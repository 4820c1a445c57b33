"""Shapes and ranges of every architecture, conditional or not."""

from __future__ import annotations

import pytest
import torch

from training.models import ARCHS, ModelSpec, build_models

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("conditional", [False, True])
def test_generator_and_discriminator_shapes(arch: str, conditional: bool) -> None:
    spec = ModelSpec(arch, 16, (1, 28, 28), 10, conditional, g_width=8, d_width=8)
    generator, discriminator = build_models(spec)
    z = torch.randn(5, 16)
    labels = torch.randint(0, 10, (5,)) if conditional else None
    images = generator(z, labels)
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= -1.0 and images.max() <= 1.0
    logits = discriminator(images, labels)
    assert logits.shape == (5,)


def test_conditional_generator_depends_on_the_label() -> None:
    spec = ModelSpec("dcgan", 16, (1, 28, 28), 10, True, g_width=8, d_width=8)
    generator, _ = build_models(spec)
    generator.eval()
    z = torch.randn(1, 16).repeat(2, 1)
    images = generator(z, torch.tensor([0, 1]))
    assert not torch.allclose(images[0], images[1])


def test_dcgan_weights_follow_the_dcgan_initialisation() -> None:
    spec = ModelSpec("dcgan", 100, (1, 28, 28), 10, False, g_width=32, d_width=32)
    generator, discriminator = build_models(spec)
    conv = discriminator.features[2].weight.detach()
    assert abs(float(conv.std()) - 0.02) < 0.002
    assert abs(float(generator.upsample[0].weight.detach().std()) - 0.02) < 0.002


def test_mlp_matches_the_paper_sizes() -> None:
    spec = ModelSpec("mlp", 100, (1, 28, 28), 10, False, g_width=256, d_width=256)
    generator, _ = build_models(spec)
    widths = [layer.out_features for layer in generator.net if isinstance(layer, torch.nn.Linear)]
    assert widths == [256, 512, 784]


def test_unknown_arch_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown arch"):
        build_models(ModelSpec("resnet", 8, (1, 28, 28), 10, False, 8, 8))


@pytest.mark.parametrize(("size", "blocks"), [(28, 2), (32, 2), (64, 3)])
@pytest.mark.parametrize("upsample", ["convT", "nearest"])
def test_dcgan_depth_follows_the_image_size(size: int, blocks: int, upsample: str) -> None:
    spec = ModelSpec("dcgan", 16, (3, size, size), 2, True, g_width=4, d_width=4, upsample=upsample)
    generator, discriminator = build_models(spec)
    labels = torch.tensor([0, 1, 1])
    images = generator(torch.randn(3, 16), labels)
    assert images.shape == (3, 3, size, size)
    assert discriminator(images, labels).shape == (3,)
    ups = [
        m
        for m in generator.modules()
        if isinstance(m, torch.nn.ConvTranspose2d | torch.nn.Upsample)
    ]
    downs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(ups) == len(downs) == blocks
