"""The pictures the pipeline produces: sample grids, loss curves, per-class accuracy bars."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on CI or servers
import matplotlib.pyplot as plt
import numpy as np

from pipeline.common.atomic import atomic_path


def save_figure(fig, path) -> None:
    """Write the PNG atomically and free the figure (matplotlib keeps every open figure alive)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _show(ax, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image.squeeze(), cmap="gray", vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def sample_grid(rows: dict[str, np.ndarray], title: str):
    """One row per named image set (e.g. original / masked / restored), one column per sample."""
    n = len(next(iter(rows.values())))
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 1.0), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(n):
            _show(axes[r, c], images[c])
        axes[r, 0].set_ylabel(name, fontsize=9 if "\n" not in name else 7)
    fig.suptitle(title, fontsize=10)
    return fig


def labelled_grid(images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, columns: int = 8):
    """Restored digits titled 'true/predicted', wrong readings in red."""
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.0, rows * 1.15), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label, guess in zip(axes.flat, images, labels, predicted):
        _show(ax, image, f"{label}/{guess}")
        ax.axis("on")
        ax.title.set_color("black" if label == guess else "red")
    fig.suptitle("Restored test images: true / predicted label", fontsize=10)
    return fig


def loss_curves(history: dict[str, list[float]], steps_per_epoch: int):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, values in history.items():
        ax.plot(np.arange(len(values)), values, label=name, linewidth=0.8)
    for epoch_start in range(steps_per_epoch, len(next(iter(history.values()))), steps_per_epoch):
        ax.axvline(epoch_start, color="grey", linewidth=0.5, linestyle=":")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title("GAN losses per iteration (dotted lines: epochs)")
    return fig


def per_class_bars(per_class: dict[str, dict[str, float]]):
    classes = sorted(per_class, key=int)
    variants = ("clean", "masked", "restored")
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.27
    for i, variant in enumerate(variants):
        ax.bar(
            np.arange(len(classes)) + (i - 1) * width, [per_class[c][variant] for c in classes], width, label=variant
        )
    ax.set_xticks(np.arange(len(classes)), classes)
    ax.set_xlabel("class")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    ax.set_title("Per-class accuracy")
    return fig


def accuracy_by_damage(damage: dict[str, dict[str, dict[str, float]]]):
    """Per damage family, each restorer's accuracy as the judge (solid) and the second reader (hatched) read it."""
    families = list(damage)
    restorers = list(damage[families[0]])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / (2 * len(restorers))
    for i, restorer in enumerate(restorers):
        for j, (reader, hatch) in enumerate((("judge", None), ("second", "//"))):
            offset = (2 * i + j - len(restorers) + 0.5) * width
            values = [damage[f][restorer][f"accuracy_{reader}"] for f in families]
            ax.bar(
                np.arange(len(families)) + offset,
                values,
                width,
                color=f"C{i}",
                hatch=hatch,
                label=f"{restorer} ({reader})",
                edgecolor="white",
            )
    ax.set_xticks(np.arange(len(families)), families)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=len(restorers), loc="lower right")
    ax.set_title("Accuracy by damage family (navier_stokes is given the true hole)")
    return fig
