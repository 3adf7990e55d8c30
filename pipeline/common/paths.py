"""Where each stage reads and writes; dvc.yaml declares the same paths."""

from __future__ import annotations

import os
from pathlib import Path

RAW_DIR = Path("data/raw")
MASKED_DIR = Path("data/masked")
CLASSIFIER_DIR = Path("data/classifier")
CLASSIFIER_MODEL = CLASSIFIER_DIR / "model.keras"
SECOND_READER_MODEL = CLASSIFIER_DIR / "second_reader.keras"
CLASSIFIER_METRICS = Path("results/classifier.json")
GAN_DIR = Path("data/gan")
GENERATOR_MODEL = GAN_DIR / "generator.keras"
GAN_SAMPLES_DIR = GAN_DIR / "samples"
GAN_LOSSES = GAN_DIR / "losses.csv"
GAN_LOSS_PLOT = GAN_DIR / "losses.png"
GAN_CHECKPOINT_DIR = GAN_DIR / "checkpoint"
GAN_CHECKPOINT = GAN_CHECKPOINT_DIR / "state.npz"
METRICS = Path("results/metrics.json")
PER_CLASS = Path("results/per_class_accuracy.csv")
READINGS = Path("results/readings.csv")
RESTORED_GRID = Path("results/restored_grid.png")
PER_CLASS_PLOT = Path("data/evaluate/per_class_accuracy.png")
DAMAGE_TABLE = Path("results/damage.csv")
DAMAGE_PLOT = Path("results/damage.png")
DAMAGE_GRID = Path("results/damage_grid.png")


def project_root() -> Path:
    """The main repository, also when DVC runs the stage in a temporary copy (`dvc exp run --temp`, queue)."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def resolve_from_root(path: str | Path) -> Path:
    """Relative paths given in environment variables are read from the main repository, not the temp copy."""
    path = Path(path).expanduser()
    return (path if path.is_absolute() else project_root() / path).resolve()
