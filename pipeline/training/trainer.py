"""Build and train the GAN of params.gan, seeded and deterministic, resumable from a checkpoint."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import tensorflow as tf

import pipeline.images.masks
import pipeline.training.gan
import pipeline.training.models
import pipeline.training.recipes
from pipeline.common.config import GanParams, Params
from pipeline.images.masks import MaskedSplit
from pipeline.training import batches, chapter_loop, checkpoint, precision, seeding
from pipeline.training.batches import steps_per_epoch, training_batches
from pipeline.training.gan import RestorationGAN
from pipeline.training.models import build_discriminator, build_generator, digit_reader, dtype_policy
from pipeline.training.recipes import BETA1, REAL_LABEL, RECIPES


def build_gan(g: GanParams) -> RestorationGAN:
    """The networks and losses of the recipe of params.gan (its compiled train_step), with their Adam optimisers."""
    recipe = RECIPES[g.recipe]
    with dtype_policy(precision.resolve(g.precision)):
        generator = build_generator(
            recipe.generator, recipe.mask_channel, recipe.composite, digit_reader=recipe.reader_weight > 0
        )
        discriminator = build_discriminator(recipe.discriminator, class_head=recipe.class_weight > 0)
    gan = RestorationGAN(
        generator,
        discriminator,
        REAL_LABEL,
        g.recon_weight,
        recipe.class_weight,
        recipe.reader_weight,
        recipe.mask_weight,
    )
    gan.compile(
        # With gan.ema the optimizer also keeps the moving average of G's weights (saved in checkpoints with
        # its other variables); `train` puts the average into the generator at the end.
        g_optimizer=keras.optimizers.Adam(g.lr_g, beta_1=BETA1, use_ema=g.ema > 0, ema_momentum=g.ema),
        d_optimizer=keras.optimizers.Adam(g.lr_d, beta_1=BETA1),
    )
    return gan


def train(
    params: Params, data: MaskedSplit, callbacks=(), resume: checkpoint.TrainingState | None = None
) -> tuple[RestorationGAN, float]:
    """Build the GAN of params.gan, seeded, and train it (on from `resume`'s epoch, with its state, if given);
    return it with the training time in seconds. Op determinism makes the same params give the same bits.

    With gan.ema > 0 the returned generator holds the moving average of its weights over the iterations
    rather than the last ones: the last weights carry the noise of the last few adversarial updates, and
    the average restored MNIST better (docs/recipes.md). BatchNorm keeps its own moving statistics.

    The chapter's recipe trains with the chapter's own loop instead (pipeline/training/chapter_loop.py)."""
    g = params.gan
    if RECIPES[g.recipe].loop == "chapter":
        return chapter_loop.train(params, data, steps_per_epoch(params, len(data.clean)), callbacks, resume)
    steps = steps_per_epoch(params, len(data.clean))
    gan, first_epoch = checkpoint.seeded_start(g.seed, lambda: build_gan(g), resume)
    started = time.perf_counter()
    gan.reader_warmup_seconds = 0.0
    if resume is None and g.reader_warmup:
        warm_up_reader(gan.generator, training_batches(data, params, steps, range(-(-g.reader_warmup // steps))), g)
        gan.reader_warmup_seconds = time.perf_counter() - started
    if first_epoch < g.epochs:
        gan.fit(
            training_batches(data, params, steps, range(first_epoch, g.epochs)),
            epochs=g.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps,
            shuffle=False,
            verbose=0,
            callbacks=list(callbacks),
        )
    gan.g_optimizer.finalize_variable_values(gan.generator.trainable_variables)
    return gan, time.perf_counter() - started


def warm_up_reader(generator: keras.Model, batches, g: GanParams) -> None:
    """Train the generator's digit reader alone (its encoder and reading head: layer DIGIT_READING) for
    gan.reader_warmup updates on the first of the GAN's batches, with Keras's default Adam (rate 0.001, as the
    readers train): the blind restorer learns where ink is missing mostly once it reads the digit
    (docs/benchmarks.md), and a reader update costs a third of a GAN iteration."""
    reader = digit_reader(generator)
    reader.compile("adam", "sparse_categorical_crossentropy")
    inputs_and_digits = batches.take(g.reader_warmup).map(lambda inputs, targets: (inputs, targets[1]))
    reader.fit(inputs_and_digits, epochs=1, steps_per_epoch=g.reader_warmup, shuffle=False, verbose=0)


def training_fingerprint(params: Params, data: MaskedSplit) -> str:
    """What a checkpoint must have been made with to be resumed: params.gan and params.mask (the damage it
    draws), the precision it computes in here, the training images, the code that trains on them and the Keras /
    TensorFlow versions."""
    sources = (
        __file__,
        batches.__file__,
        pipeline.training.gan.__file__,
        pipeline.training.models.__file__,
        pipeline.images.masks.__file__,
        checkpoint.__file__,
        chapter_loop.__file__,
        precision.__file__,
        seeding.__file__,
        pipeline.training.recipes.__file__,
    )
    code = [Path(source).read_bytes() for source in sources]
    return checkpoint.fingerprint(
        dataclasses.asdict(params.gan),
        precision.resolve(params.gan.precision),
        dataclasses.asdict(params.mask),
        data.masked,
        data.holes,
        data.clean,
        data.labels,
        data.skeleton,
        *code,
        keras.__version__,
        tf.__version__,
    )
