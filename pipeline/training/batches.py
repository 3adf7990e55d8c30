"""The compiled loop's training data: which images each iteration trains on and the damage they get, drawn from
the seed and the iteration alone, so a run resumed at any epoch sees exactly the batches an uninterrupted one would."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipeline.common.config import Params
from pipeline.common.errors import PipelineError
from pipeline.common.image import IMAGE_SIDE
from pipeline.images.masks import TRAINING_STREAM, MaskedSplit, apply_masks, draw_damage
from pipeline.training.models import GENERATOR_INPUT_SHAPE, IMAGE_SHAPE, generator_input
from pipeline.training.recipes import RECIPES


def steps_per_epoch(params: Params, n_images: int) -> int:
    steps = params.gan.steps_per_epoch or n_images // params.gan.batch_size
    if steps == 0:
        raise PipelineError(f"gan.batch_size: {params.gan.batch_size} is larger than the {n_images} training images")
    return steps


def epoch_order(n_images: int, batch_size: int, steps: int, seed: int, epoch: int) -> np.ndarray:
    """Indices of the images that epoch `epoch` trains on, in order: permutations drawn from (seed, epoch)
    alone, so a run resumed at any epoch sees exactly the batches an uninterrupted one would have."""
    rng = np.random.default_rng([seed, epoch])
    needed = steps * batch_size
    rounds = -(-needed // n_images)
    return np.concatenate([rng.permutation(n_images) for _ in range(rounds)])[:needed]


def batch_damage(
    data: MaskedSplit, indices: np.ndarray, params: Params, iteration: int
) -> tuple[np.ndarray, np.ndarray]:
    """(damaged images, holes) of the training images `indices` at global iteration `iteration`: drawn anew from
    (gan.seed, iteration) alone, so the restorer sees new holes every epoch and a resumed run draws exactly what an
    uninterrupted one would. (The mask stage's one draw instead bought nothing measurable: docs/recipes.md.)"""
    rng = np.random.default_rng([params.gan.seed, TRAINING_STREAM, iteration])
    holes = draw_damage(data.skeleton[indices], params.mask.families, rng)
    return apply_masks(data.clean[indices], holes, params.mask.fill), holes


def training_batches(data: MaskedSplit, params: Params, steps: int, epochs: range) -> tf.data.Dataset:
    """Batches of (generator input, (clean image, label, holes)) for `epochs`, each in its epoch_order, with the
    damage of `batch_damage`. Each batch is gathered from the NumPy arrays themselves: copying them into the
    graph as constants would hold a second 0.4 GB copy of the training set for the whole run."""
    g = params.gan
    mask_channel = RECIPES[g.recipe].mask_channel
    order = np.concatenate([epoch_order(len(data.clean), g.batch_size, steps, g.seed, epoch) for epoch in epochs])
    iterations = np.arange(epochs.start * steps, epochs.stop * steps)

    def gather(indices, iteration):
        masked, holes = batch_damage(data, indices, params, int(iteration))
        inputs = generator_input(masked, holes if mask_channel else None)
        # The holes as 0/1 floats: a distribution strategy sums what a dataset yields, and cannot sum booleans.
        return inputs, data.clean[indices], data.labels[indices].astype(np.int32), holes.astype(np.float32)

    def batch(indices, iteration):
        inputs, targets, digits, holes = tf.numpy_function(
            gather, [indices, iteration], (tf.float32, tf.float32, tf.int32, tf.float32)
        )
        return tf.ensure_shape(inputs, (None, *GENERATOR_INPUT_SHAPE)), (
            tf.ensure_shape(targets, (None, *IMAGE_SHAPE)),
            tf.ensure_shape(digits, (None,)),
            tf.ensure_shape(holes, (None, IMAGE_SIDE, IMAGE_SIDE)),
        )

    batches = tf.data.Dataset.from_tensor_slices((order.reshape(len(iterations), g.batch_size), iterations))
    return batches.map(batch).prefetch(tf.data.AUTOTUNE)
