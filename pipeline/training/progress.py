"""Progress of a training run, for either loop: a tqdm bar per epoch with the live losses, every iteration's losses
kept, and a stop at the first non-finite one."""

from __future__ import annotations

import math
import sys

import keras
from tqdm import tqdm

from pipeline.common.errors import PipelineError
from pipeline.training.gan import LOSS_NAMES


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
