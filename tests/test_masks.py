import dataclasses

import numpy as np

from conftest import ROOT
from pipeline.config import load_params
from pipeline.masks import apply_masks, split_rng, square_masks

CLASSIC = load_params(ROOT / "params.yaml").mask


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


def test_size_and_ranges_follow_the_params():
    params = dataclasses.replace(CLASSIC, size=4, row_min=0, row_max=24, col_min=3, col_max=5)
    holes = square_masks(2000, params, split_rng(1, "test"))
    assert (holes.sum(axis=(1, 2)) == 16).all()
    rows, cols = corners(holes)
    assert rows.min() == 0 and rows.max() == 24
    assert set(cols) == {3, 4, 5}


def test_several_holes_cover_more_pixels():
    params = dataclasses.replace(CLASSIC, count=3, row_min=0, row_max=20, col_min=0, col_max=20)
    holes = square_masks(500, params, split_rng(0, "train"))
    assert (holes.sum(axis=(1, 2)) >= 64).all() and holes.sum(axis=(1, 2)).mean() > 64


def test_same_seed_same_masks_other_seed_other_masks():
    first = square_masks(100, CLASSIC, split_rng(7, "train"))
    np.testing.assert_array_equal(first, square_masks(100, CLASSIC, split_rng(7, "train")))
    assert not np.array_equal(first, square_masks(100, CLASSIC, split_rng(8, "train")))
    assert not np.array_equal(first, square_masks(100, CLASSIC, split_rng(7, "test")))


def test_apply_fills_the_hole_and_keeps_the_rest():
    images = np.random.default_rng(0).uniform(-1, 1, (10, 28, 28, 1)).astype(np.float32)
    holes = square_masks(10, CLASSIC, split_rng(0, "test"))
    masked = apply_masks(images, holes, -1.0)
    assert (masked[holes] == -1.0).all()
    np.testing.assert_array_equal(masked[~holes], images[~holes])
