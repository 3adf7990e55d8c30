"""Resumable GAN training: the whole training state after each completed epoch, in one file written atomically.

A `kill -9`, an out-of-memory kill or a power cut mid-epoch then costs at most
that epoch: the next run of the stage restores the state of the last completed
epoch and trains on from there, and ends with the generator an uninterrupted run
would have made, bit for bit. The state is everything the rest of training
depends on: both networks' variables (BatchNorm statistics and the dropout seed
states included), both optimizers' variables, the losses and sample restorations
of the epochs done.

A state is only resumed by a run that would have made it: it carries a
fingerprint of the params, the training data and the training code, and a run
with another fingerprint starts from scratch (and overwrites the state at the
end of its first epoch). The stage empties the folder once training has finished
and every output is written.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from pipeline.common.atomic import load_npz, save_npz
from pipeline.training.seeding import seed_everything

GROUPS = ("generator", "discriminator", "g_optimizer", "d_optimizer")


@dataclass
class TrainingState:
    epoch: int  # epochs completed
    variables: dict[str, list[np.ndarray]]  # per group of GROUPS, in the order of its `.variables`
    history: dict[str, list[float]]  # loss name -> one value per iteration of the completed epochs
    samples: list[np.ndarray]  # the sample grid's restorations, one array per completed epoch


def fingerprint(*parts) -> str:
    """SHA-256 over arrays (shape, dtype and bytes), bytes and JSON-able values, in order."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(f"{part.shape}{part.dtype}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            digest.update(part)
        else:
            digest.update(json.dumps(part, sort_keys=True).encode())
    return digest.hexdigest()


def _groups(gan) -> dict[str, list]:
    return {name: getattr(gan, name).variables for name in GROUPS}


def capture(gan, epoch: int, history: dict[str, list[float]], samples: list[np.ndarray]) -> TrainingState:
    variables = {name: [v.numpy() for v in group] for name, group in _groups(gan).items()}
    return TrainingState(epoch, variables, {k: list(v) for k, v in history.items()}, list(samples))


def restore(gan, state: TrainingState) -> None:
    """Put `state` into a freshly built `gan`. The optimizers are built first: until their first step they hold
    no variables to assign to."""
    gan.g_optimizer.build(gan.generator.trainable_variables)
    gan.d_optimizer.build(gan.discriminator.trainable_variables)
    for name, group in _groups(gan).items():
        saved = state.variables[name]
        if [tuple(v.shape) for v in group] != [a.shape for a in saved]:
            raise ValueError(f"the {name} variables do not match the model built from params.gan")
        for variable, value in zip(group, saved):
            variable.assign(value)


def seeded_start(seed: int, build, resume: TrainingState | None):
    """Seed every generator of random numbers, make the ops deterministic, build the models with `build()` and
    restore `resume`'s state into them when given: the start every training loop shares, so that the same params
    give the same bits and a resumed run goes on exactly where the interrupted one stopped. Returns the models
    and the first epoch to train."""
    seed_everything(seed)
    gan = build()
    if resume is None:
        return gan, 0
    restore(gan, resume)
    return gan, resume.epoch


def save(path: str | Path, state: TrainingState, fingerprint: str) -> None:
    arrays = {f"{name}.{i:04d}": value for name, values in state.variables.items() for i, value in enumerate(values)}
    arrays |= {f"history.{k}": np.asarray(v, dtype=np.float64) for k, v in state.history.items()}
    arrays["samples"] = np.stack(state.samples)
    save_npz(path, compress=False, fingerprint=np.array(fingerprint), epoch=np.array(state.epoch), **arrays)


def load(path: str | Path, fingerprint: str) -> TrainingState | None:
    """The state saved at `path` if it was made with `fingerprint`; None (and one line saying why) otherwise."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = load_npz(path)
        made_with = str(saved.pop("fingerprint"))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        print(f"checkpoint {path} is unreadable ({exc}); training from scratch")
        return None
    if made_with != fingerprint:
        print(f"checkpoint {path} was made with other params, data or code; training from scratch")
        return None
    epoch = int(saved.pop("epoch"))
    samples = list(saved.pop("samples"))
    history = {k.removeprefix("history."): v.tolist() for k, v in saved.items() if k.startswith("history.")}
    variables = {name: [saved[k] for k in sorted(saved) if k.startswith(f"{name}.")] for name in GROUPS}
    return TrainingState(epoch, variables, history, samples)


def clear(directory: str | Path) -> None:
    """Empty the folder (DVC keeps it as a persistent output, so the folder itself stays)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.iterdir():
        path.unlink()


class EpochCheckpoint(keras.callbacks.Callback):
    """At the end of each epoch, save the state of training. Runs after the callbacks whose records it saves
    (`progress`: the losses; `samples`: the sample restorations)."""

    def __init__(self, path: str | Path, fingerprint: str, progress, samples):
        super().__init__()
        self.path, self.fingerprint, self.progress, self.samples = Path(path), fingerprint, progress, samples

    def on_epoch_end(self, epoch, logs=None):
        state = capture(self.model, epoch + 1, self.progress.history, self.samples.restored)
        save(self.path, state, self.fingerprint)
