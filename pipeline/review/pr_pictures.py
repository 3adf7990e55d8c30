"""The PR report's pictures, each side beside the other, drawn with matplotlib from `dvc plots diff --json`.

A PR comment cannot run vega, so the report draws PNGs itself, from the data DVC hands its own plots page: the
rows of data/gan/losses.csv and results/damage.csv of each revision (read from git or the DVC cache), and each
revision's results/restored_grid.png. A side whose file DVC could not read is left out of that picture.
"""

from __future__ import annotations

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np

from pipeline.images import figures

LOSSES = ("d_loss", "g_loss")
READERS = (("judge", "the judge"), ("second", "the second reader"))


def vega_rows(plots: dict, field: str, rev: str) -> list[dict]:
    """Revision `rev`'s rows of the vega plot that draws `field` (plots are keyed by their dvc.yaml titles). DVC
    repeats each row once per plotted field; the rows of the first field are each row once."""
    entries = next(
        (
            entries
            for entries in plots.values()
            if entries
            and entries[0]["type"] == "vega"
            and any(field in row for row in entries[0]["content"]["data"]["values"][:1])
        ),
        [],
    )
    if not entries:
        return []
    first = entries[0]["content"]["data"]["values"][0].get("field")
    return [
        row
        for entry in entries
        for row in entry["content"]["data"]["values"]
        if row["rev"] == rev and row.get("field") == first
    ]


def image_path(plots: dict, path: str, rev: str) -> str | None:
    """Where `dvc plots diff -o` put revision `rev`'s copy of the image `path`."""
    return next((entry["url"] for entry in plots.get(path, []) if entry["revisions"] == [rev]), None)


def side_by_side_images(sides: list[tuple[str, str]], out) -> None:
    """(label, PNG path) per side, in one figure, one column each."""
    images = [mpimg.imread(path) for _, path in sides]
    width, height = max(image.shape[1] for image in images), max(image.shape[0] for image in images)
    fig, axes = plt.subplots(1, len(sides), figsize=(len(sides) * width / 100, height / 100 + 0.5), squeeze=False)
    for ax, (label, _), image in zip(axes[0], sides, images):
        ax.imshow(image)
        ax.set_axis_off()
        ax.set_title(label, fontsize=11)
    figures.save_figure(fig, out)


def loss_curves(sides: list[tuple[str, list[dict]]], out) -> None:
    """(label, losses.csv rows) per side: D and G loss per iteration, one panel each, the same y axis."""
    fig, axes = plt.subplots(1, len(sides), figsize=(5.5 * len(sides), 3.5), squeeze=False, sharey=True)
    for ax, (label, rows) in zip(axes[0], sides):
        iterations = [int(row["iteration"]) for row in rows]
        for name in LOSSES:
            ax.plot(iterations, [float(row[name]) for row in rows], label=name, linewidth=0.9)
        ax.set_xlabel("iteration")
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("loss")
    figures.save_figure(fig, out)


def damage_accuracy(sides: list[tuple[str, list[dict]]], out) -> None:
    """(label, damage.csv rows) per side: restored accuracy per damage family, the sides' bars beside each other,
    one panel per reader; the grey tick is the damaged images' accuracy."""
    families = [row["family"] for row in sides[0][1]]
    x = np.arange(len(families))
    width = 0.8 / len(sides)
    fig, axes = plt.subplots(1, len(READERS), figsize=(11, 3.8), sharey=True)
    for ax, (reader, reader_name) in zip(axes, READERS):
        for i, (label, rows) in enumerate(sides):
            by_family = {row["family"]: row for row in rows}
            offset = (i - (len(sides) - 1) / 2) * width
            ax.bar(
                x + offset,
                [float(by_family[f][f"restored_{reader}"]) for f in families],
                width,
                color=f"C{i}",
                label=label,
            )
            ax.scatter(
                x + offset,
                [float(by_family[f][f"masked_{reader}"]) for f in families],
                marker="_",
                color="grey",
                s=200,
                zorder=3,
            )
        ax.set_xticks(x, families)
        ax.set_ylim(0, 1)
        ax.set_title(f"restored, read by {reader_name}", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("test accuracy")
    figures.save_figure(fig, out)
