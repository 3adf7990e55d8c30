"""The damage families (pipeline/images/masks.py): geometry, strokes on ink, seeding, mixtures, fresh damage per iteration."""

import dataclasses

import numpy as np
import pytest
from conftest import ROOT, mirror_dir

from pipeline.common.config import SquareDamage, StrokeDamage, load_params
from pipeline.images.datasets import load_split
from pipeline.images.masks import (
    MaskedSplit,
    apply_masks,
    draw_damage,
    skeletons,
    split_rng,
    square_masks,
    stroke_masks,
)
from pipeline.scoring.damage_table import FAMILIES
from pipeline.training.batches import batch_damage

PARAMS = load_params(ROOT / "params.yaml")
CLASSIC = FAMILIES["classic"]


@pytest.fixture(scope="module")
def digits():
    images, _ = load_split(mirror_dir() / "mnist", "test", 500)
    return images, skeletons(images)


def corners(holes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = holes.any(axis=2).argmax(axis=1)
    cols = holes.any(axis=1).argmax(axis=1)
    return rows, cols


def test_classic_mask_is_one_8x8_square_with_corner_in_8_to_11():
    holes = square_masks(4000, CLASSIC, split_rng(0, "train"))
    assert holes.shape == (4000, 28, 28) and holes.dtype == bool
    assert (holes.sum(axis=(1, 2)) == 64).all()
    rows, cols = corners(holes)
    assert set(rows) == set(cols) == {8, 9, 10, 11}  # every position in range is used, none outside
    for hole, r, c in zip(holes[:50], rows[:50], cols[:50]):
        assert hole[r : r + 8, c : c + 8].all()
    assert PARAMS.mask.families["classic"] == dataclasses.replace(
        CLASSIC, weight=PARAMS.mask.families["classic"].weight
    )


def test_sides_and_corners_follow_the_params_and_stay_inside_the_image():
    family = SquareDamage("square", 1.0, 4, 12, 1, 1, 2, 18, 3, 5)
    holes = square_masks(3000, family, split_rng(1, "test"))
    sides = np.sqrt(holes.sum(axis=(1, 2)))
    assert set(sides) == set(range(4, 13))  # every side in range, squares whole
    rows, cols = corners(holes)
    assert rows.min() == 2 and rows.max() == 18 and set(cols) == {3, 4, 5}
    assert (rows + sides <= 28).all()
    big = rows[sides == 12]
    assert big.max() == 16  # a 12x12 corner is clipped to 28 - 12


def test_two_or_three_boxes_per_image():
    family = SquareDamage("square", 1.0, 4, 4, 2, 3, 0, 24, 0, 24)
    holes = square_masks(2000, family, split_rng(0, "train"))
    pixels = holes.sum(axis=(1, 2))
    assert pixels.max() <= 48 and (pixels > 16).mean() > 0.99  # at least two 4x4 boxes (rarely on top of each other)
    assert (pixels == 48).mean() > 0.3 and (pixels == 32).mean() > 0.3  # both counts drawn (overlap is rare)


def test_strokes_lie_on_the_ink_of_each_digit(digits):
    images, skeleton = digits
    family = StrokeDamage("strokes", 1.0, 1, 1, 8, 3)
    holes = stroke_masks(skeleton, family, split_rng(0, "test"))
    ink = images > 127
    assert (holes.any(axis=(1, 2))).all()  # every digit loses a piece
    assert (holes & ink).sum() / holes.sum() > 0.7  # what is lost is ink, not paper
    assert ((holes & skeleton).sum(axis=(1, 2)) >= 1).all()  # each piece is laid along the skeleton
    rows, cols = np.nonzero(holes[0])
    assert rows.max() - rows.min() <= 8 + 2 and cols.max() - cols.min() <= 8 + 2  # length 8, thickened by 3
    longer = stroke_masks(
        skeleton, dataclasses.replace(family, length=16, count_min=3, count_max=3), split_rng(0, "test")
    )
    assert longer.sum() > 1.5 * holes.sum()
    assert not stroke_masks(np.zeros((3, 28, 28), bool), family, split_rng(0, "test")).any()  # no ink, no damage


def test_a_mixture_draws_each_family_by_weight(digits):
    _, skeleton = digits
    square = SquareDamage("square", 1.0, 6, 6, 1, 1, 0, 0, 0, 0)  # always the top-left 6x6 corner
    strokes = StrokeDamage("strokes", 3.0, 1, 1, 8, 3)
    holes = draw_damage(skeleton, {"corner": square, "strokes": strokes}, split_rng(0, "train"))
    is_corner = holes[:, :6, :6].all(axis=(1, 2)) & (holes.sum(axis=(1, 2)) == 36)
    assert 0.17 < is_corner.mean() < 0.33  # weight 1 of 4
    off = draw_damage(
        skeleton, {"corner": square, "strokes": dataclasses.replace(strokes, weight=0.0)}, split_rng(0, "train")
    )
    assert off[:, :6, :6].all() and (off.sum(axis=(1, 2)) == 36).all()


def test_same_seed_same_damage_other_seed_other_damage(digits):
    _, skeleton = digits
    families = PARAMS.mask.families
    first = draw_damage(skeleton, families, split_rng(7, "train"))
    np.testing.assert_array_equal(first, draw_damage(skeleton, families, split_rng(7, "train")))
    assert not np.array_equal(first, draw_damage(skeleton, families, split_rng(8, "train")))
    assert not np.array_equal(first, draw_damage(skeleton, families, split_rng(7, "test")))


def test_training_draws_new_damage_every_iteration_from_the_seed_alone(digits):
    images, skeleton = digits
    clean = images.astype(np.float32)[..., None] / 127.5 - 1
    data = MaskedSplit(clean, np.zeros(len(clean)), clean, np.zeros(skeleton.shape, bool), skeleton)
    indices = np.arange(64)
    masked, holes = batch_damage(data, indices, PARAMS, iteration=5)
    np.testing.assert_array_equal(masked, apply_masks(clean[indices], holes, PARAMS.mask.fill))
    again, same = batch_damage(data, indices, PARAMS, iteration=5)
    np.testing.assert_array_equal(holes, same)
    _, next_epoch = batch_damage(data, indices, PARAMS, iteration=5 + 937)
    assert not np.array_equal(holes, next_epoch)


def test_apply_fills_the_hole_and_keeps_the_rest():
    images = np.random.default_rng(0).uniform(-1, 1, (10, 28, 28, 1)).astype(np.float32)
    holes = square_masks(10, CLASSIC, split_rng(0, "test"))
    masked = apply_masks(images, holes, -1.0)
    assert (masked[holes] == -1.0).all()
    np.testing.assert_array_equal(masked[~holes], images[~holes])
