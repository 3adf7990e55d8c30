"""The served chain's own check of a request: each problem answered 400 with one line that names it.

The chain's signature declares no inputs (pipeline/serving/registry.py): MLflow's check of a declared input
answers a wrong shape, a missing field or an empty batch with the request's whole array in the message
(`mlflow models serve`, 3.17), and lets a batch of any size through. This module checks instead, before
the networks run: the fields the chain takes, (n, 28, 28) images of whole numbers 0..255, at least one
and at most MAX_IMAGES of them.
"""

from __future__ import annotations

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

MAX_IMAGES = 1000  # per request: about 2.5 MB of JSON in, 6 MB out; more is split into several requests
SIDE = 28


class BadRequest(MlflowException):
    """Answered 400 with this message alone. MLflow's scoring server rewrites the message of an MlflowException
    raised in predict to begin with the whole input (`Failed to predict data '<input>'`); this one keeps the
    message it was made with, so a client reads what is wrong, not its own array back."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self.__dict__.setdefault("_message", value)  # the first assignment, in MlflowException.__init__, holds


def checked_pixels(name: str, value) -> np.ndarray:
    """`value` as uint8 (n, 28, 28), or BadRequest naming what is wrong with field `name`."""
    pixels = np.asarray(value)
    if pixels.size == 0:
        raise BadRequest(f"{name}: the batch is empty; send at least one {SIDE}x{SIDE} image")
    if pixels.ndim != 3 or pixels.shape[1:] != (SIDE, SIDE):
        hint = " (one image is a batch of one: wrap it in a list)" if pixels.shape == (SIDE, SIDE) else ""
        raise BadRequest(f"{name}: expected shape (n, {SIDE}, {SIDE}), got {pixels.shape}{hint}")
    if len(pixels) > MAX_IMAGES:
        raise BadRequest(f"{name}: {len(pixels)} images in one request; at most {MAX_IMAGES}, send the rest in another")
    if pixels.dtype.kind not in "iuf":
        raise BadRequest(f"{name}: pixel values must be whole numbers 0..255, got values of type {pixels.dtype}")
    low, high = pixels.min(), pixels.max()
    if not (low >= 0 and high <= 255):
        raise BadRequest(f"{name}: pixel values must be 0..255, got values from {low:g} to {high:g}")
    if pixels.dtype.kind == "f" and not np.array_equal(pixels, np.round(pixels)):
        raise BadRequest(f"{name}: pixel values must be whole numbers 0..255, got fractions")
    return pixels.astype(np.uint8)


def checked_batch(model_input, takes_mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(images, masks) of a request's `inputs`; masks None for a blind chain, which takes `image` alone
    (a `mask` sent to it is ignored, as MLflow ignored it when the signature named the inputs)."""
    fields = ("image", "mask") if takes_mask else ("image",)
    if not isinstance(model_input, dict):
        raise BadRequest(
            f'"inputs" must be an object with the field(s) {", ".join(fields)}: {{"inputs": {{"image": [...]}}}}'
        )
    missing = [name for name in fields if name not in model_input]
    if missing:
        restorer = "is given the hole" if takes_mask else "restores blind"
        raise BadRequest(f"missing field(s) {', '.join(missing)}: this chain {restorer} and takes {', '.join(fields)}")
    images = checked_pixels("image", model_input["image"])
    if not takes_mask:
        return images, None
    masks = checked_pixels("mask", model_input["mask"])
    if masks.shape != images.shape:
        raise BadRequest(f"mask: shape {masks.shape} differs from image's {images.shape}; one mask per image")
    return images, masks
