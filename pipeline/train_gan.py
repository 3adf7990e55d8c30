"""Stage 4: train the restoration GAN on (masked, clean) training pairs; save the generator.

Per iteration, D and G losses go to a tqdm bar, to data/gan/losses.csv (a DVC
plot) and, batched once per epoch, to the MLflow run with step = global
iteration. Each epoch also writes a sample grid (original / masked / restored)
and the state of training (pipeline/training/checkpoint.py), from which a rerun after an
interruption resumes.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import sys
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf
from tqdm import tqdm

import pipeline.images.masks
import pipeline.training.gan
import pipeline.training.models
from pipeline.common import paths, tracking
from pipeline.common.atomic import atomic_path, save_keras
from pipeline.common.cli import run_stage
from pipeline.common.config import IMAGE_SIDE, GanParams, Params
from pipeline.common.errors import PipelineError
from pipeline.images import figures
from pipeline.images.masks import TRAINING_STREAM, MaskedSplit, apply_masks, draw_damage
from pipeline.mask import load_masked_split
from pipeline.serving import registry
from pipeline.training import chapter_loop, checkpoint, precision
from pipeline.training.gan import LOSS_NAMES, RestorationGAN
from pipeline.training.models import (
    GENERATOR_INPUT_SHAPE,
    IMAGE_SHAPE,
    build_discriminator,
    build_generator,
    dtype_policy,
    generator_input,
)

SAMPLES = 8


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
    """(damaged images, holes) of the training images `indices` at global iteration `iteration`. With
    gan.fresh_damage the damage is drawn anew from (gan.seed, iteration) alone, so the restorer sees new holes
    every epoch and a resumed run draws exactly what an uninterrupted one would; without it, the mask stage's."""
    if not params.gan.fresh_damage:
        return data.masked[indices], data.holes[indices]
    rng = np.random.default_rng([params.gan.seed, TRAINING_STREAM, iteration])
    holes = draw_damage(data.skeleton[indices], params.mask.families, rng)
    return apply_masks(data.clean[indices], holes, params.mask.fill), holes


def training_batches(data: MaskedSplit, params: Params, steps: int, epochs: range) -> tf.data.Dataset:
    """Batches of (generator input, (clean image, label, holes)) for `epochs`, each in its epoch_order, with the
    damage of `batch_damage`. Each batch is gathered from the NumPy arrays themselves: copying them into the
    graph as constants would hold a second 0.4 GB copy of the training set for the whole run."""
    g = params.gan
    order = np.concatenate([epoch_order(len(data.clean), g.batch_size, steps, g.seed, epoch) for epoch in epochs])
    iterations = np.arange(epochs.start * steps, epochs.stop * steps)

    def gather(indices, iteration):
        masked, holes = batch_damage(data, indices, params, int(iteration))
        inputs = generator_input(masked, None if not g.mask_channel else holes)
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


class LossProgress(keras.callbacks.Callback):
    """A tqdm bar per epoch with the live losses; keeps every iteration's losses and hands each
    epoch's to `on_epoch(epoch_history, first_step)` (the stage logs them to MLflow in one batch).
    Stops training at the first non-finite loss: nothing after it would be worth saving."""

    def __init__(self, epochs: int, steps: int, on_epoch=None, history: dict[str, list[float]] | None = None):
        super().__init__()
        self.epochs, self.steps, self.on_epoch = epochs, steps, on_epoch
        self.history = {name: list(history[name]) if history else [] for name in LOSS_NAMES}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.bar = tqdm(
            total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="it", mininterval=1.0, file=sys.stdout
        )
        self.epoch_history = {name: [] for name in LOSS_NAMES}

    def on_train_batch_end(self, batch, logs=None):
        losses = {name: float(logs[name]) for name in LOSS_NAMES}
        if not all(math.isfinite(value) for value in losses.values()):
            self.bar.close()
            raise PipelineError(
                f"training diverged at iteration {self.epoch * self.steps + batch} (epoch {self.epoch + 1}, "
                f"batch {batch}): {', '.join(f'{k}={v}' for k, v in losses.items())}; no generator was saved. "
                "Lower gan.lr_g / gan.lr_d or gan.recon_weight."
            )
        for name, value in losses.items():
            self.epoch_history[name].append(value)
        self.bar.set_postfix(d=f"{self.epoch_history['d_loss'][-1]:.3f}", g=f"{self.epoch_history['g_loss'][-1]:.3f}")
        self.bar.update()

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()
        if self.on_epoch:
            self.on_epoch(self.epoch_history, epoch * self.steps)
        for name in LOSS_NAMES:
            self.history[name].extend(self.epoch_history[name])


class SampleGrid(keras.callbacks.Callback):
    """After each epoch: original / masked / restored for a fixed set of training images, saved and logged.
    `earlier`: the restorations of epochs done before a resume, drawn again so every epoch has its grid."""

    def __init__(self, inputs, clean, earlier=()):
        super().__init__()
        self.inputs, self.clean = inputs, clean
        self.restored = []
        for epoch, restored in enumerate(earlier):
            self.draw(epoch, restored)

    def on_epoch_end(self, epoch, logs=None):
        self.draw(epoch, self.model.generator(self.inputs, training=False).numpy())

    def draw(self, epoch: int, restored) -> None:
        self.restored.append(restored)
        rows = {"original": self.clean, "masked": self.inputs[..., :1], "restored": restored}
        path = paths.GAN_SAMPLES_DIR / f"epoch_{epoch + 1:02d}.png"
        figures.save_figure(figures.sample_grid(rows, f"epoch {epoch + 1}"), path)
        mlflow.log_artifact(str(path), "samples")


def write_losses_csv(history: dict[str, list[float]]) -> None:
    with atomic_path(paths.GAN_LOSSES) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration", *history])
        for i, row in enumerate(zip(*history.values())):
            writer.writerow([i, *(f"{v:.6g}" for v in row)])


def learning_rate(g: GanParams, peak: float, total_steps: int):
    """gan.lr_schedule over a run of `total_steps` iterations: a linear warm-up from 0 over gan.warmup_steps, then
    `peak` held (constant) or brought down to 0 along a cosine (cosine). Keras's CosineDecay does both (alpha 1
    holds the peak); it reads the optimizer's step counter, which checkpoints save, so a resumed run goes on where
    it stopped."""
    if g.lr_schedule == "constant" and not g.warmup_steps:
        return peak
    return keras.optimizers.schedules.CosineDecay(
        0.0 if g.warmup_steps else peak,
        max(total_steps - g.warmup_steps, 1),
        alpha=1.0 if g.lr_schedule == "constant" else 0.0,
        warmup_target=peak if g.warmup_steps else None,
        warmup_steps=g.warmup_steps,
    )


def build_gan(g: GanParams, total_steps: int) -> RestorationGAN:
    """The recipe of params.gan with its Adam optimisers, ready to train for `total_steps` iterations."""
    with dtype_policy(precision.resolve(g.precision)):
        generator = build_generator(
            g.generator,
            g.mask_channel,
            g.composite,
            digit_reader=g.reader_weight > 0,
            width=g.width,
            damage_threshold=g.damage_threshold,
            encoder_depth=g.encoder_depth,
        )
        discriminator = build_discriminator(g.discriminator, class_head=g.class_weight > 0)
    gan = RestorationGAN(
        generator,
        discriminator,
        g.real_label,
        g.recon_weight,
        g.class_weight,
        g.reader_weight,
        g.mask_weight,
        g.adversarial_warmup,
    )
    gan.compile(
        # With gan.ema the optimizer also keeps the moving average of G's weights (saved in checkpoints with
        # its other variables); `train` puts the average into the generator at the end.
        g_optimizer=keras.optimizers.Adam(
            learning_rate(g, g.lr_g, total_steps), beta_1=g.beta1, use_ema=g.ema > 0, ema_momentum=g.ema
        ),
        d_optimizer=keras.optimizers.Adam(learning_rate(g, g.lr_d, total_steps), beta_1=g.beta1),
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

    gan.loop chapter trains with the chapter's own loop instead (pipeline/training/chapter_loop.py)."""
    g = params.gan
    if g.loop == "chapter":
        return chapter_loop.train(params, data, steps_per_epoch(params, len(data.clean)), callbacks, resume)
    steps = steps_per_epoch(params, len(data.clean))
    gan, first_epoch = checkpoint.seeded_start(g.seed, lambda: build_gan(g, steps * g.epochs), resume)
    started = time.perf_counter()
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


def training_fingerprint(params: Params, data: MaskedSplit) -> str:
    """What a checkpoint must have been made with to be resumed: params.gan and params.mask (the damage it
    draws), the precision it computes in here, the training images, the code that trains on them and the Keras /
    TensorFlow versions."""
    sources = (
        __file__,
        pipeline.training.gan.__file__,
        pipeline.training.models.__file__,
        pipeline.images.masks.__file__,
        checkpoint.__file__,
        chapter_loop.__file__,
        precision.__file__,
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


def main(params: Params) -> None:
    g = params.gan
    data = load_masked_split(params, "train")
    steps = steps_per_epoch(params, len(data.clean))
    fingerprint = training_fingerprint(params, data)
    resume = checkpoint.load(paths.GAN_CHECKPOINT, fingerprint)
    with tracking.stage_run(params, "train_gan", "gan") as (client, run_id, parent_id):
        computes_in = precision.resolve(g.precision)
        mlflow.set_tag("gan_precision", computes_in)
        print(f"gan.precision {g.precision}: computing in {computes_in}")
        if resume:
            # The epochs done before the interruption, logged once here: the killed run keeps its own copy.
            print(f"resuming from the checkpoint of epoch {resume.epoch}/{g.epochs}")
            mlflow.set_tag("resumed_from_epoch", resume.epoch)
            tracking.log_metric_history(client, run_id, resume.history, 0)
        progress = LossProgress(
            g.epochs,
            steps,
            lambda history, first: tracking.log_metric_history(client, run_id, history, first),
            resume.history if resume else None,
        )
        sample_holes = data.holes[:SAMPLES] if g.mask_channel else None
        samples = SampleGrid(
            generator_input(data.masked[:SAMPLES], sample_holes), data.clean[:SAMPLES], resume.samples if resume else ()
        )
        saver = checkpoint.EpochCheckpoint(paths.GAN_CHECKPOINT, fingerprint, progress, samples)
        gan, seconds = train(params, data, [progress, samples, saver], resume)

        save_keras(gan.generator, paths.GENERATOR_MODEL)
        write_losses_csv(progress.history)
        figures.save_figure(figures.loss_curves(progress.history, steps), paths.GAN_LOSS_PLOT)
        mlflow.log_artifact(str(paths.GAN_LOSS_PLOT))
        mlflow.log_artifact(str(paths.GAN_LOSSES))
        trained_epochs = g.epochs - (resume.epoch if resume else 0)
        summary = {
            "gan_train_seconds": seconds,
            "gan_images_per_second": trained_epochs * steps * g.batch_size / max(seconds, 1e-9),
            "gan_final_d_loss": progress.history["d_loss"][-1],
            "gan_final_g_loss": progress.history["g_loss"][-1],
        }
        mlflow.log_metrics(summary)
        tracking.log_to_parent(client, parent_id, summary)
        registry.log_keras(gan.generator, paths.GENERATOR_MODEL, "generator", params.data.dataset, samples.inputs[:2])
        checkpoint.clear(paths.GAN_CHECKPOINT_DIR)  # every output is written: nothing left to resume
        print(f"trained {trained_epochs} epochs x {steps} iterations in {seconds:.0f} s")


if __name__ == "__main__":
    sys.exit(run_stage(main))
