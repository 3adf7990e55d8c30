"""Restore, then read: the generator and the classifier chained on uint8 images, as an MLflow pyfunc model.

Two kinds of request. A picture of a whole written number, `picture` (base64 PNG or JPEG) with the optional param
`digits`, is split and framed as `digit-restore --phone` does and answered with the number
(pipeline/serving/picture.py). Otherwise:
Input: `image`, uint8 (n, 28, 28), white digit on black as in MNIST, and `mask`, uint8 (n, 28, 28),
non-zero where pixels are known to be missing. A blind generator finds the damage itself: its chain
takes `image` alone, and where a mask is given anyway (restore_and_read), the pixels outside it are
kept. The optional param `fill_value` (0..255) adds a detection rule: pixels of exactly that value are
missing too, for images whose damage was painted in a known colour.
A request is checked before the networks run (pipeline/serving/chain_input.py): each problem is answered 400 with
one line naming it.
Output: `restored` uint8 (n, 28, 28): with a generator that is given the hole, every known pixel kept
as it came and only the hole filled; `damage` uint8 (n, 28, 28), 255 where the restoration differs
from the input by more than a tenth of the range or the mask said so (the damage found and filled);
`digit` (n,), the classifier's reading of the restored image; `confidence` (n,), its probability;
`probabilities` (n, 10).
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np

from pipeline.images.datasets import to_unit_range
from pipeline.images.masks import apply_masks
from pipeline.scoring.inference import forward
from pipeline.serving.chain_input import BadRequest, checked_batch
from pipeline.serving.picture import checked_digits, picture_answer, picture_frames
from pipeline.serving.preprocess import NO_FILL_VALUE, checked_fill_value
from pipeline.training.models import generator_input, is_blind, with_damage_threshold

CHANGED = 25  # of 0..255: a pixel the restoration moved further than this counts as damage found (`damage`)


def holes_of(images: np.ndarray, masks: np.ndarray, fill_value: int = NO_FILL_VALUE) -> np.ndarray:
    """Boolean holes: the mask, plus the pixels equal to `fill_value` when one is given."""
    holes = masks != 0
    if checked_fill_value(fill_value) != NO_FILL_VALUE:
        holes |= images == fill_value
    return holes


def restore_and_read(
    generator, classifier, train_fill: float, images, masks=None, fill_value: int = NO_FILL_VALUE
) -> dict:
    """The chain on a batch; `train_fill` is the hole value the generator was trained with (params mask.fill).
    `masks` None: nothing is known to be missing (a blind generator still finds and fills the damage).
    The networks run as compiled calls (pipeline/scoring/inference.py), the path evaluate reads with: through
    Keras's `predict`, whose own loop costs ~100 ms a call whatever the batch, the chain took 247 ms on a phone
    number's ten digits, against 21 ms (docs/serving.md, "Under load")."""
    images = np.asarray(images, dtype=np.uint8)
    masks = np.zeros(images.shape, np.uint8) if masks is None else np.asarray(masks)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or masks.shape != images.shape:
        raise ValueError(f"image and mask must both be (n, 28, 28); got {images.shape} and {masks.shape}")
    holes = holes_of(images, masks, fill_value)
    masked = apply_masks(to_unit_range(images), holes, train_fill)
    blind = is_blind(generator)
    generated = forward(generator, generator_input(masked, None if blind else holes))[..., 0]
    filled = np.clip(np.rint((generated + 1.0) * 127.5), 0, 255).astype(np.uint8)
    if blind:  # its own composite keeps what it finds intact; a given mask says more: outside it all is intact
        known = ~holes & holes.any(axis=(1, 2), keepdims=True)
        restored = np.where(known, images, filled)
    else:
        restored = np.where(holes, filled, images)
    damage = holes | (np.abs(restored.astype(np.int16) - images) > CHANGED)
    probabilities = forward(classifier, to_unit_range(restored)).astype(np.float32)
    digits = probabilities.argmax(axis=1)
    return {
        "restored": restored,
        "damage": (damage * 255).astype(np.uint8),
        "digit": digits.astype(np.int64),
        "confidence": probabilities[np.arange(len(digits)), digits],
        "probabilities": probabilities,
    }


class RestoreAndRead(mlflow.pyfunc.PythonModel):
    """The chain as a pyfunc: artifacts `generator` and `classifier` (.keras files), model_config `train_fill` and
    `damage_threshold`."""

    # MLflow (3.17) warns on every import unless `predict` has type hints it can turn into a schema, and
    # a dict of named tensors has none; pipeline/serving/chain_input.py checks the input instead. This is the
    # switch MLflow's own subclasses use to skip that check (mlflow/pyfunc/model.py).
    _skip_type_hint_validation = True

    def load_context(self, context):
        import keras

        threshold = float(context.model_config.get("damage_threshold", 0.0))  # evaluate.damage_threshold
        self.generator = with_damage_threshold(keras.models.load_model(context.artifacts["generator"]), threshold)
        self.classifier = keras.models.load_model(context.artifacts["classifier"])
        self.train_fill = float(context.model_config["train_fill"])
        # Trace the compiled calls now, not in the first requests: a second batch size makes TensorFlow trace
        # them once more, for any size (reduce_retracing); ~1 s a trace on a busy 2-core machine.
        for size in (1, 2):
            restore_and_read(self.generator, self.classifier, self.train_fill, np.zeros((size, 28, 28), np.uint8))

    def predict(self, context, model_input, params=None):
        params = params or {}
        if isinstance(model_input, dict) and "picture" in model_input:
            return self.read_picture(model_input["picture"], checked_digits(params.get("digits")))
        images, masks = checked_batch(model_input, takes_mask=not is_blind(self.generator))
        try:
            fill_value = checked_fill_value(int(params.get("fill_value", NO_FILL_VALUE)))
        except ValueError as error:
            raise BadRequest(str(error)) from None
        return restore_and_read(self.generator, self.classifier, self.train_fill, images, masks, fill_value)

    def read_picture(self, picture, digits: int) -> dict:
        """A picture of a written number -> its number; only a blind chain can: nobody marks a hole in it."""
        if not is_blind(self.generator):
            raise BadRequest("picture: this chain's generator is given the hole and cannot find damage itself")
        frames = picture_frames(picture, digits)
        return picture_answer(restore_and_read(self.generator, self.classifier, self.train_fill, frames))
