"""Classical inpainting without training (OpenCV): the bar a learned restorer has to clear."""

from __future__ import annotations

import cv2
import numpy as np

METHODS = {"telea": cv2.INPAINT_TELEA, "navier_stokes": cv2.INPAINT_NS}
RADIUS = 3


def inpaint(masked: np.ndarray, holes: np.ndarray, method: str) -> np.ndarray:
    """Fill the holes of (n, 28, 28, 1) images in [-1, 1] with OpenCV's `method`; known pixels are kept."""
    pixels = np.round((masked[..., 0] + 1.0) * 127.5).astype(np.uint8)
    filled = np.stack(
        [cv2.inpaint(image, hole.astype(np.uint8), RADIUS, METHODS[method]) for image, hole in zip(pixels, holes)]
    )
    restored = filled.astype(np.float32)[..., None] / 127.5 - 1.0
    return np.where(holes[..., None], restored, masked)
