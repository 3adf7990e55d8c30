"""Stage 4: train the restoration GAN on (masked, clean) training pairs; save the generator.

Per iteration, D and G losses go to a tqdm bar, to data/gan/losses.csv (a DVC
plot) and, batched once per epoch, to the MLflow run with step = global
iteration. Each epoch also writes a sample grid (original / masked / restored).
"""

from __future__ import annotations

import csv
import sys
import time

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.config import Params
from pipeline.errors import PipelineError

LOSS_NAMES = ("d_loss", "g_loss", "l1")
SAMPLES = 8


def load_pairs(params: Params):
    """Masked and clean training images, checked to belong together."""
    from pipeline.atomic import load_npz
    from pipeline.datasets import load_split, to_unit_range

    images, _ = load_split(paths.RAW_DIR, "train", params.data.max_train)
    masked = load_npz(paths.MASKED_DIR / "train.npz")["masked"]
    if len(masked) != len(images):
        raise PipelineError(
            f"{paths.MASKED_DIR / 'train.npz'} holds {len(masked)} images but {paths.RAW_DIR} gives "
            f"{len(images)} for data.max_train={params.data.max_train}; rerun the mask stage (dvc repro)"
        )
    return masked, to_unit_range(images)


def steps_per_epoch(params: Params, n_images: int) -> int:
    steps = params.gan.steps_per_epoch or n_images // params.gan.batch_size
    if steps == 0:
        raise PipelineError(
            f"gan.batch_size: {params.gan.batch_size} is larger than the {n_images} training images"
        )
    return steps


def write_losses_csv(history: dict[str, list[float]]) -> None:
    from pipeline.atomic import atomic_path

    with atomic_path(paths.GAN_LOSSES) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration", *history])
        for i, row in enumerate(zip(*history.values())):
            writer.writerow([i, *(f"{v:.6g}" for v in row)])


def main(params: Params) -> None:
    import keras
    import mlflow
    import tensorflow as tf
    from tqdm import tqdm

    from pipeline import figures, tracking
    from pipeline.atomic import save_figure, save_keras
    from pipeline.gan import RestorationGAN
    from pipeline.models import build_classic_generator, build_discriminator

    g = params.gan
    masked, clean = load_pairs(params)
    steps = steps_per_epoch(params, len(clean))

    class Progress(keras.callbacks.Callback):
        """tqdm bar per epoch with live losses; keeps every iteration's losses; logs them to MLflow per epoch."""

        def __init__(self, client, run_id):
            super().__init__()
            self.client, self.run_id = client, run_id
            self.history = {name: [] for name in LOSS_NAMES}

        def on_epoch_begin(self, epoch, logs=None):
            self.bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{g.epochs}", unit="it", file=sys.stdout)
            self.epoch_history = {name: [] for name in LOSS_NAMES}

        def on_train_batch_end(self, batch, logs=None):
            for name in LOSS_NAMES:
                self.epoch_history[name].append(float(logs[name]))
            self.bar.set_postfix(d=f"{self.epoch_history['d_loss'][-1]:.3f}", g=f"{self.epoch_history['g_loss'][-1]:.3f}")
            self.bar.update()

        def on_epoch_end(self, epoch, logs=None):
            self.bar.close()
            tracking.log_metric_history(self.client, self.run_id, self.epoch_history, first_step=epoch * steps)
            for name in LOSS_NAMES:
                self.history[name].extend(self.epoch_history[name])

    class SampleGrid(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            restored = self.model.generator(masked[:SAMPLES], training=False).numpy()
            fig = figures.sample_grid(
                {"original": clean[:SAMPLES], "masked": masked[:SAMPLES], "restored": restored},
                f"epoch {epoch + 1}",
            )
            path = paths.GAN_SAMPLES_DIR / f"epoch_{epoch + 1:02d}.png"
            save_figure(fig, path)
            figures.plt.close(fig)
            mlflow.log_artifact(str(path), "samples")

    with tracking.stage_run(params, "train_gan", "gan") as (client, run_id, parent_id):
        keras.utils.set_random_seed(g.seed)
        dataset = (
            tf.data.Dataset.from_tensor_slices((masked, clean))
            .shuffle(len(clean), seed=g.seed)
            .repeat()
            .batch(g.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        gan = RestorationGAN(build_classic_generator(), build_discriminator(), g.real_label, g.recon_weight)
        gan.compile(
            g_optimizer=keras.optimizers.Adam(g.lr_g, beta_1=g.beta1),
            d_optimizer=keras.optimizers.Adam(g.lr_d, beta_1=g.beta1),
        )
        progress = Progress(client, run_id)
        started = time.perf_counter()
        gan.fit(dataset, epochs=g.epochs, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[progress, SampleGrid()])
        seconds = time.perf_counter() - started

        save_keras(gan.generator, paths.GENERATOR_MODEL)
        write_losses_csv(progress.history)
        fig = figures.loss_curves(progress.history, steps)
        save_figure(fig, paths.GAN_LOSS_PLOT)
        mlflow.log_artifact(str(paths.GAN_LOSS_PLOT))
        mlflow.log_artifact(str(paths.GAN_LOSSES))
        mlflow.log_artifact(str(paths.GENERATOR_MODEL), "model")
        summary = {
            "gan_train_seconds": seconds,
            "gan_images_per_second": g.epochs * steps * g.batch_size / seconds,
            "gan_final_d_loss": progress.history["d_loss"][-1],
            "gan_final_g_loss": progress.history["g_loss"][-1],
        }
        mlflow.log_metrics(summary)
        tracking.log_to_parent(client, parent_id, summary)
        print(f"trained {g.epochs} epochs x {steps} iterations in {seconds:.0f} s")


if __name__ == "__main__":
    sys.exit(run_stage(main))
