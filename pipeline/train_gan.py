"""Stage 4: train the restoration GAN on (masked, clean) training pairs; save the generator.

Per iteration, D and G losses go to a tqdm bar, to data/gan/losses.csv (a DVC
plot) and, batched once per epoch, to the MLflow run with step = global
iteration. Each epoch also writes a sample grid (original / masked / restored)
and the state of training (pipeline/training/checkpoint.py), from which a rerun after an
interruption resumes.
"""

from __future__ import annotations

import sys

import keras
import mlflow

from pipeline.common import paths, tracking
from pipeline.common.atomic import save_csv, save_keras
from pipeline.common.cli import run_stage
from pipeline.common.config import Params
from pipeline.images import figures
from pipeline.images.splits import load_masked_split
from pipeline.serving import registry
from pipeline.training import checkpoint, precision
from pipeline.training.batches import steps_per_epoch
from pipeline.training.models import generator_input
from pipeline.training.progress import LossProgress
from pipeline.training.recipes import RECIPES
from pipeline.training.trainer import train, training_fingerprint

SAMPLES = 8


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
    rows = ([i, *(f"{v:.6g}" for v in row)] for i, row in enumerate(zip(*history.values())))
    save_csv(paths.GAN_LOSSES, ["iteration", *history], rows)


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
        sample_holes = data.holes[:SAMPLES] if RECIPES[g.recipe].mask_channel else None
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
    sys.exit(run_stage(main, "train_gan"))
