"""The seed scheme, alone and through the server: per-image seeds, separate label stream,
bit-identical single-image regeneration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.pipeline import seeding
from tests.service.conftest import Server, samples_npy, settings_for


def test_derive_keeps_the_request_seed_for_image_zero() -> None:
    assert seeding.derive(123, 0) == 123
    assert seeding.derive(seeding.MAX_SEED, 0) == seeding.MAX_SEED


def test_derived_seeds_are_distinct_and_in_the_api_range() -> None:
    seeds = [seeding.derive(7, i) for i in range(1000)]
    assert len(set(seeds)) == 1000
    assert all(0 <= s <= seeding.MAX_SEED for s in seeds)


def test_inputs_depend_on_the_image_seed_alone() -> None:
    batch = seeding.make_inputs(99, 6, latent_dim=8, num_classes=10, label=None)
    assert batch.labels is not None
    for i, image_seed in enumerate(batch.seeds):
        alone = seeding.make_inputs(image_seed, 1, 8, 10, int(batch.labels[i]))
        assert np.array_equal(alone.z[0], batch.z[i])


def test_fixing_the_label_does_not_change_the_latent() -> None:
    random = seeding.make_inputs(5, 4, 8, 10, None)
    fixed = seeding.make_inputs(5, 4, 8, 10, 3)
    assert np.array_equal(random.z, fixed.z)  # labels come from their own stream
    assert fixed.labels is not None and set(fixed.labels.tolist()) == {3}


def test_unconditional_inputs_have_no_labels() -> None:
    assert seeding.make_inputs(1, 2, 8, None, None).labels is None


def test_random_seed_is_in_range() -> None:
    assert all(0 <= seeding.random_seed() <= seeding.MAX_SEED for _ in range(100))


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Server]:
    srv = Server(settings_for(model_dir, max_batch=16)).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("model", ["fashion", "digits"])
def test_same_seed_gives_the_same_images(server: Server, model: str) -> None:
    assert np.array_equal(
        samples_npy(server, n=10, seed=2024, model=model),
        samples_npy(server, n=10, seed=2024, model=model),
    )
    assert not np.array_equal(
        samples_npy(server, n=10, seed=2024, model=model),
        samples_npy(server, n=10, seed=2025, model=model),
    )


@pytest.mark.parametrize("model", ["fashion", "digits"])
def test_any_image_regenerates_bit_for_bit_alone(server: Server, model: str) -> None:
    body = server.client.post("/samples", params={"n": 12, "seed": 31337, "model": model}).json()
    batch = samples_npy(server, n=12, seed=31337, model=model)
    for i in (0, 5, 11):
        image = body["images"][i]
        params = {"n": 1, "seed": image["seed"], "model": model}
        if image["label"] is not None:
            params["label"] = image["label"]
        assert np.array_equal(samples_npy(server, **params)[0], batch[i])


def test_image_zero_of_a_request_is_the_request_seed_alone(server: Server) -> None:
    body = server.client.post("/samples", params={"n": 3, "seed": 8, "model": "fashion"}).json()
    label = body["images"][0]["label"]
    alone = samples_npy(server, n=1, seed=8, label=label, model="fashion")
    assert np.array_equal(alone[0], samples_npy(server, n=3, seed=8, model="fashion")[0])


def test_batch_rows_gives_each_part_the_values_make_rows_gives_it_alone() -> None:
    parts = [
        seeding.SeededRows(7, 0, 5),
        seeding.SeededRows(2**63 - 1, 3, 4, label=6),
        seeding.SeededRows(0, 10, 26),
        seeding.SeededRows(123456789, 0, 1, label=0),
    ]
    together = seeding.batch_rows(parts, latent_dim=9, num_classes=10)
    z, labels = together.z, together.labels
    alone = [seeding.make_rows(p.seed, p.start, p.stop, 9, 10, p.label) for p in parts]
    assert np.array_equal(z, np.concatenate([a.z for a in alone]))
    assert labels is not None
    assert np.array_equal(labels, np.concatenate([a.labels for a in alone if a.labels is not None]))
    assert np.array_equal(together.seeds, np.concatenate([a.seeds for a in alone]))
    unconditional = seeding.batch_rows(parts, latent_dim=9, num_classes=None)
    assert unconditional.labels is None and np.array_equal(unconditional.z, z)
