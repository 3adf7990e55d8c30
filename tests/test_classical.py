import numpy as np

from pipeline.scoring.classical import METHODS, inpaint


def test_classical_inpainting_fills_only_the_hole_from_its_surroundings():
    # A uniform grey image: whatever the method, the hole must come back grey.
    clean = np.full((2, 28, 28, 1), 0.5, dtype=np.float32)
    holes = np.zeros((2, 28, 28), dtype=bool)
    holes[:, 10:18, 10:18] = True
    masked = np.where(holes[..., None], -1.0, clean).astype(np.float32)
    for method in METHODS:
        restored = inpaint(masked, holes, method)
        assert restored.shape == masked.shape and restored.dtype == np.float32
        np.testing.assert_array_equal(restored[~holes], masked[~holes])
        assert np.abs(restored[holes] - 0.5).max() < 0.02, method
