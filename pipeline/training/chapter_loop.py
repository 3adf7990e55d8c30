"""The chapter's training loop as it was published (the recipe `chapter`): three Python-level calls per iteration.

Per iteration, as the chapter's `train()`:
1. a random batch of masked images through `generator.predict` (BatchNorm in inference mode: its moving
   statistics, Keras 2's, see models.Keras2BatchNormalization);
2. the discriminator's `train_on_batch` on 2 x batch images: a separate random batch of originals at
   REAL_LABEL (0.9) and the generated ones at 0;
3. the stacked generator -> frozen discriminator model's `train_on_batch` on another random batch of masked
   images at label 1.
The three batches are drawn independently, with replacement (unpaired: D never sees an original beside its own
restoration). Unlike the chapter's global NumPy seed, they are drawn from (gan.seed, epoch), so a run resumed
after an interruption draws exactly what an uninterrupted one would.

Freezing. Keras 3 reads a model's trainable weights when its train function is first traced, not at compile():
so, as in the chapter, D is made trainable before its own step and frozen before the stacked model's, and each
train function is first traced in the state it must keep (tests/test_chapter_loop.py checks that the D step
changes only D and the G step only G).
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np

from pipeline.common.config import GanParams, Params
from pipeline.images.masks import MaskedSplit
from pipeline.training import checkpoint, precision
from pipeline.training.gan import LOSS_NAMES
from pipeline.training.models import (
    GENERATOR_INPUT_SHAPE,
    build_discriminator,
    build_generator,
    dtype_policy,
    generator_input,
)
from pipeline.training.recipes import BETA1, REAL_LABEL

BATCH_STREAM = 4  # the random batches' own stream of gan.seed (masks.py numbers the damage streams 1..3)


@dataclasses.dataclass
class ChapterGAN:
    """The chapter's three models, with the attribute names pipeline/training/checkpoint.py and the stage's callbacks read."""

    generator: keras.Model
    discriminator: keras.Model
    stacked: keras.Model  # generator -> frozen discriminator, trained towards "real"
    g_optimizer: keras.optimizers.Optimizer
    d_optimizer: keras.optimizers.Optimizer


def build(g: GanParams) -> ChapterGAN:
    """The chapter's generator and discriminator, each compiled with binary cross-entropy and its Adam."""
    with dtype_policy(precision.resolve(g.precision)):
        generator = build_generator("chapter", mask_channel=False, composite=False)
        discriminator = build_discriminator("chapter")
    d_optimizer = keras.optimizers.Adam(g.lr_d, beta_1=BETA1)
    g_optimizer = keras.optimizers.Adam(g.lr_g, beta_1=BETA1)
    discriminator.compile(loss="binary_crossentropy", optimizer=d_optimizer)
    inputs = keras.Input(GENERATOR_INPUT_SHAPE, name="masked_and_hole")
    stacked = keras.Model(inputs, discriminator(generator(inputs)), name="chapter_gan")
    stacked.compile(loss="binary_crossentropy", optimizer=g_optimizer)
    return ChapterGAN(generator, discriminator, stacked, g_optimizer, d_optimizer)


def epoch_batches(n_images: int, batch_size: int, steps: int, seed: int, epoch: int) -> np.ndarray:
    """(steps, 3, batch_size) indices: per iteration the masked images G restores for D, the originals D sees as
    real, and the masked images the stacked model trains G on; drawn with replacement from (seed, epoch) alone."""
    return np.random.default_rng([seed, BATCH_STREAM, epoch]).integers(0, n_images, (steps, 3, batch_size))


def iteration(gan: ChapterGAN, data: MaskedSplit, indices: np.ndarray) -> dict[str, float]:
    """One iteration of the chapter's loop on the batches `indices` (one row of epoch_batches). Returns the losses
    of LOSS_NAMES: D's and the stacked model's, and the L1 between the predicted batch and its own originals (a
    figure the chapter did not compute, logged so its runs read like the others; no loss uses it)."""
    for_d, real, for_g = indices
    generated = gan.generator.predict(generator_input(data.masked[for_d]), verbose=0)
    batch = len(for_d)
    gan.discriminator.trainable = True
    d_loss = gan.discriminator.train_on_batch(
        np.concatenate([data.clean[real], generated]), np.r_[np.full(batch, REAL_LABEL), np.zeros(batch)]
    )
    gan.discriminator.trainable = False
    g_loss = gan.stacked.train_on_batch(generator_input(data.masked[for_g]), np.ones(batch))
    losses = dict.fromkeys(LOSS_NAMES, 0.0)
    losses |= {
        "d_loss": float(d_loss),
        "g_loss": float(g_loss),
        "l1": float(np.abs(generated - data.clean[for_d]).mean()),
    }
    return losses


def train(
    params: Params, data: MaskedSplit, steps: int, callbacks=(), resume: checkpoint.TrainingState | None = None
) -> tuple[ChapterGAN, float]:
    """The chapter's loop for params.gan.epochs epochs of `steps` iterations (on from `resume`'s epoch, with its
    state, if given), driving the stage's Keras callbacks as `fit` would; returns the models and the seconds."""
    g = params.gan
    gan, first_epoch = checkpoint.seeded_start(g.seed, lambda: build(g), resume)
    for callback in callbacks:
        callback.set_model(gan)
    started = time.perf_counter()
    for epoch in range(first_epoch, g.epochs):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        for step, indices in enumerate(epoch_batches(len(data.clean), g.batch_size, steps, g.seed, epoch)):
            logs = iteration(gan, data, indices)
            for callback in callbacks:
                callback.on_train_batch_end(step, logs)
        for callback in callbacks:
            callback.on_epoch_end(epoch)
    return gan, time.perf_counter() - started
