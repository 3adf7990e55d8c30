"""Stage 4: train the restoration GAN on (masked, clean) training pairs; save the generator.

Per iteration, D and G losses go to a tqdm bar, to data/gan/losses.csv (a DVC
plot) and, batched once per epoch, to the MLflow run with step = global
iteration. Each epoch also writes a sample grid (original / masked / restored).
"""

from __future__ import annotations

import csv
import math
import sys
import time

import keras
import mlflow
import tensorflow as tf
from tqdm import tqdm

from pipeline import figures, paths, registry, tracking
from pipeline.atomic import atomic_path, save_keras
from pipeline.cli import run_stage
from pipeline.config import GanParams, Params
from pipeline.errors import PipelineError
from pipeline.gan import RestorationGAN
from pipeline.mask import load_masked_split
from pipeline.models import build_discriminator, build_generator, generator_input

LOSS_NAMES = ("d_loss", "g_loss", "l1")
SAMPLES = 8


def steps_per_epoch(params: Params, n_images: int) -> int:
    steps = params.gan.steps_per_epoch or n_images // params.gan.batch_size
    if steps == 0:
        raise PipelineError(
            f"gan.batch_size: {params.gan.batch_size} is larger than the {n_images} training images"
        )
    return steps


def training_batches(masked, holes, clean, batch_size: int, seed: int) -> tf.data.Dataset:
    """Endless shuffled batches of (generator input, clean image); the hole channel is added per batch."""
    return (
        tf.data.Dataset.from_tensor_slices((masked, holes, clean))
        .shuffle(len(clean), seed=seed)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .map(lambda m, h, c: (tf.concat([m, tf.cast(h, tf.float32)[..., None]], axis=-1), c))
        .prefetch(tf.data.AUTOTUNE)
    )


class LossProgress(keras.callbacks.Callback):
    """A tqdm bar per epoch with the live losses; keeps every iteration's losses and hands each
    epoch's to `on_epoch(epoch_history, first_step)` (the stage logs them to MLflow in one batch).
    Stops training at the first non-finite loss: nothing after it would be worth saving."""

    def __init__(self, epochs: int, steps: int, on_epoch=None):
        super().__init__()
        self.epochs, self.steps, self.on_epoch = epochs, steps, on_epoch
        self.history = {name: [] for name in LOSS_NAMES}

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
    """After each epoch: original / masked / restored for a fixed set of training images, saved and logged."""

    def __init__(self, inputs, clean):
        super().__init__()
        self.inputs, self.clean = inputs, clean

    def on_epoch_end(self, epoch, logs=None):
        restored = self.model.generator(self.inputs, training=False).numpy()
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


def build_gan(g: GanParams) -> RestorationGAN:
    """The recipe of params.gan with its Adam optimisers, ready to train."""
    gan = RestorationGAN(
        build_generator(g.generator, g.mask_channel, g.composite),
        build_discriminator(g.discriminator),
        g.real_label,
        g.recon_weight,
    )
    gan.compile(
        g_optimizer=keras.optimizers.Adam(g.lr_g, beta_1=g.beta1),
        d_optimizer=keras.optimizers.Adam(g.lr_d, beta_1=g.beta1),
    )
    return gan


def train(params: Params, masked, holes, clean, callbacks=()) -> tuple[RestorationGAN, float]:
    """Build the GAN of params.gan, seeded, and train it; return it with the training time in seconds."""
    g = params.gan
    keras.utils.set_random_seed(g.seed)
    gan = build_gan(g)
    started = time.perf_counter()
    gan.fit(
        training_batches(masked, holes, clean, g.batch_size, g.seed),
        epochs=g.epochs,
        steps_per_epoch=steps_per_epoch(params, len(clean)),
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks),
    )
    return gan, time.perf_counter() - started


def main(params: Params) -> None:
    g = params.gan
    clean, _, masked, holes = load_masked_split(params, "train")
    steps = steps_per_epoch(params, len(clean))
    with tracking.stage_run(params, "train_gan", "gan") as (client, run_id, parent_id):
        progress = LossProgress(
            g.epochs, steps, lambda history, first: tracking.log_metric_history(client, run_id, history, first)
        )
        samples = SampleGrid(generator_input(masked[:SAMPLES], holes[:SAMPLES]), clean[:SAMPLES])
        gan, seconds = train(params, masked, holes, clean, [progress, samples])

        save_keras(gan.generator, paths.GENERATOR_MODEL)
        write_losses_csv(progress.history)
        figures.save_figure(figures.loss_curves(progress.history, steps), paths.GAN_LOSS_PLOT)
        mlflow.log_artifact(str(paths.GAN_LOSS_PLOT))
        mlflow.log_artifact(str(paths.GAN_LOSSES))
        summary = {
            "gan_train_seconds": seconds,
            "gan_images_per_second": g.epochs * steps * g.batch_size / seconds,
            "gan_final_d_loss": progress.history["d_loss"][-1],
            "gan_final_g_loss": progress.history["g_loss"][-1],
        }
        mlflow.log_metrics(summary)
        tracking.log_to_parent(client, parent_id, summary)
        registry.log_keras(gan.generator, paths.GENERATOR_MODEL, "generator", params.data.dataset, samples.inputs[:2])
        print(f"trained {g.epochs} epochs x {steps} iterations in {seconds:.0f} s")


if __name__ == "__main__":
    sys.exit(run_stage(main))
