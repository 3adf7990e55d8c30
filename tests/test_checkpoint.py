"""Resumable GAN training (pipeline/training/checkpoint.py): a checkpoint made with other params or data is not resumed, and
each epoch's data order is known on its own. tests/test_reliability.py kills and resumes a real run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import ROOT, random_masked_batch

from pipeline.common.config import load_params
from pipeline.images.masks import MaskedSplit
from pipeline.training import checkpoint
from pipeline.training.batches import epoch_order
from pipeline.training.trainer import training_fingerprint


def split(masked, holes, clean) -> MaskedSplit:
    return MaskedSplit(clean, np.arange(len(clean)) % 10, masked, holes, holes)


@pytest.fixture(scope="module")
def data():
    return split(*random_masked_batch(40))


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


def test_a_checkpoint_of_other_params_or_data_is_not_resumed(data, params, tmp_path, capsys):
    path = tmp_path / "state.npz"
    state = checkpoint.TrainingState(
        1, {group: [np.ones(3, np.float32)] for group in checkpoint.GROUPS}, {"d_loss": [0.5]}, [data.clean[:2]]
    )
    checkpoint.save(path, state, training_fingerprint(params, data))

    assert checkpoint.load(path, training_fingerprint(params, data)).epoch == 1
    other_lr = dataclasses.replace(params, gan=dataclasses.replace(params.gan, lr_g=params.gan.lr_g * 2))
    assert checkpoint.load(path, training_fingerprint(other_lr, data)) is None
    other_damage = dataclasses.replace(params, mask=dataclasses.replace(params.mask, seed=params.mask.seed + 1))
    assert checkpoint.load(path, training_fingerprint(other_damage, data)) is None
    other_clean = data.clean.copy()
    other_clean[0, 0, 0, 0] += 0.5
    assert checkpoint.load(path, training_fingerprint(params, dataclasses.replace(data, clean=other_clean))) is None
    assert capsys.readouterr().out.count("made with other params, data or code; training from scratch") == 3

    for cut in (100, 0):  # as if cut short (the stage writes it atomically, but a disk may fill up)
        path.write_bytes(path.read_bytes()[:cut])
        assert checkpoint.load(path, training_fingerprint(params, data)) is None
        assert "unreadable" in capsys.readouterr().out


def test_each_epoch_has_its_own_order_known_without_the_ones_before():
    first = epoch_order(100, 8, 12, seed=0, epoch=0)
    assert len(first) == 96 and len(set(first)) == 96  # one pass, no image twice
    assert np.array_equal(first, epoch_order(100, 8, 12, seed=0, epoch=0))
    assert not np.array_equal(first, epoch_order(100, 8, 12, seed=0, epoch=1))
    assert not np.array_equal(first, epoch_order(100, 8, 12, seed=1, epoch=0))
    longer = epoch_order(10, 4, 5, seed=0, epoch=0)  # more steps than one pass holds
    assert len(longer) == 20 and sorted(longer[:10]) == list(range(10))
