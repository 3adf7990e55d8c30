"""Time to accuracy: the chapter's loop against the default recipe, in one process, on one clock.

    DIGIT_RESTORE_MIRROR=../shared/datasets python benchmarks/time_to_accuracy.py \
        [--recipes chapter default] [--variant NAME KEY=VALUE ...] [--every 100] [--held-out 2000]
        [--set KEY=VALUE ...] [--out DIR]
    DIGIT_RESTORE_MIRROR=../shared/datasets python benchmarks/time_to_accuracy.py --replot   # redraw from DIR's CSV

Trains each recipe on MNIST's training images (the chapter's on the chapter's box alone, as it was published;
"default" is params.yaml's gan section as it stands, with its own damage; each `--variant NAME KEY=VALUE ...`
is the default with those params overridden, to race a lever against it) and, every `--every` iterations,
restores a fixed held-out set of `--held-out` masked test images (the chapter's 8x8 box, drawn from the
evaluation stream, as evaluate's classic family) and reads them with the pipeline's classifier (the judge).
Scoring is excluded from the training clock. A compiled recipe with gan.ema is scored on its averaged weights,
the generator it would save if stopped there.

Prints, per recipe, the training seconds to reach (a) the chapter's published 87.82%, (b) the accuracy of
OpenCV Navier-Stokes given the true hole on the same images, (c) recovered fraction 0.95; its final accuracy; and
the chapter's time over each recipe's. Writes DIR/time_to_accuracy.csv and .png (accuracy against training
seconds, all recipes on one plot) and logs them with the figures to an MLflow run (experiment "benchmarks").
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import time
from pathlib import Path

import keras
import matplotlib
import matplotlib.ticker
import mlflow
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from restoration import (  # noqa: E402
    CACHE,
    CHAPTER_BOX_ONLY,
    ROOT,
    params_with_overrides,
    recipe_params,
    trained_readers,
    training_split,
)

from pipeline.common.tracking import tracking_uri  # noqa: E402
from pipeline.images.datasets import load_split, to_unit_range  # noqa: E402
from pipeline.images.fetch import fetch_dataset  # noqa: E402
from pipeline.images.masks import apply_masks, skeletons  # noqa: E402
from pipeline.scoring import classical, damage_table  # noqa: E402
from pipeline.scoring import metrics as m  # noqa: E402
from pipeline.scoring.inference import read  # noqa: E402
from pipeline.training.batches import steps_per_epoch  # noqa: E402
from pipeline.training.models import DAMAGE, generator_input, has_layer  # noqa: E402
from pipeline.training.trainer import train as train_gan  # noqa: E402

CHAPTER_ACCURACY = 0.8782  # the chapter's published accuracy on its restored MNIST test images
RECOVERED_TARGET = 0.95
RECIPES = {"chapter": "chapter", "default": "blind"}  # the racers' names -> their gan.recipe
DIAGNOSIS = ("head_on_lost", "head_on_intact", "accuracy_given_hole")  # damage_found's, per score


@dataclasses.dataclass
class HeldOut:
    """The masked images every recipe is scored on, with what a recovered fraction needs."""

    masked: np.ndarray
    clean: np.ndarray
    holes: np.ndarray
    labels: np.ndarray
    clean_accuracy: float
    masked_accuracy: float


@contextlib.contextmanager
def scored_generator(model):
    """The generator a stop now would save: a compiled GAN whose optimizer averages G's weights (gan.ema) gets the
    averages for the duration, as training/trainer.train puts them in at the end (Keras keeps them, in the order of the
    variables it was built on, in `_model_variables_moving_average`: it has no public getter); the chapter's as is."""
    generator, optimizer = model.generator, model.g_optimizer
    if not optimizer.use_ema:
        yield generator
        return
    variables = generator.trainable_variables
    saved = [v.numpy() for v in variables]
    for variable, average in zip(variables, optimizer._model_variables_moving_average):
        variable.assign(average)
    try:
        yield generator
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


def damage_found(generator, held_out: HeldOut, judge) -> tuple[float | None, float | None, float | None]:
    """What a blind generator's damage head finds on the held-out set, to tell its two halves apart: the head's mean
    probability on the ink that was lost and on the pixels that were not damaged, and the judge's accuracy on what
    the generator draws composited with the true hole (its restoration were the head perfect). None for a
    generator without a head."""
    if not has_layer(generator, DAMAGE):
        return None, None, None
    h = held_out
    parts = keras.Model(generator.input, [generator.get_layer(DAMAGE).output, generator.get_layer("restored").output])
    found, drawn = (np.asarray(t) for t in parts(generator_input(h.masked), training=False))
    lost = h.holes & (h.masked[..., 0] != h.clean[..., 0])
    given_hole = np.where(h.holes[..., None], drawn, h.masked)
    return (
        float(found[..., 0][lost].mean()),
        float(found[..., 0][~h.holes].mean()),
        m.accuracy(read(judge, given_hole), h.labels),
    )


class AccuracyClock(keras.callbacks.Callback):
    """Every `every` iterations (and after the last), the judge's accuracy and the recovered fraction on the
    held-out set, stamped with the training seconds so far: wall time since the first iteration began, less the
    time spent scoring. `records`: (iteration, training seconds, accuracy, recovered, head on lost ink, head on
    undamaged pixels, accuracy given the true hole; the last three from `damage_found`), in order."""

    def __init__(self, held_out: HeldOut, judge: keras.Model, every: int, total: int):
        super().__init__()
        self.held_out, self.judge, self.every, self.total = held_out, judge, every, total
        self.records: list[tuple[int, float, float, float]] = []
        self.iteration = 0
        self.started = None
        self.scoring = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        if self.started is None:  # the clock also counts the reader's warm-up (gan.reader_warmup), run before fit
            self.started = time.perf_counter() - getattr(self.model, "reader_warmup_seconds", 0.0)

    def on_train_batch_end(self, batch, logs=None):
        self.iteration += 1
        if self.iteration % self.every and self.iteration != self.total:
            return
        paused = time.perf_counter()
        training_seconds = paused - self.started - self.scoring
        h = self.held_out
        with scored_generator(self.model) as generator:
            restored = damage_table.restore(generator, h.masked, h.holes)
            found = damage_found(generator, h, self.judge)
        accuracy = m.accuracy(read(self.judge, restored), h.labels)
        recovered = m.recovered_fraction(h.clean_accuracy, h.masked_accuracy, accuracy)
        self.records.append((self.iteration, training_seconds, accuracy, recovered, *found))
        print(
            f"  {self.iteration}: {training_seconds:.1f} s, {accuracy:.2%}"
            + (
                ""
                if found[0] is None
                else ", head on lost ink {:.3f}, on undamaged {:.4f}, given the hole {:.2%}".format(*found)
            ),
            flush=True,
        )
        self.scoring += time.perf_counter() - paused


def seconds_to(records, column: int, target: float) -> float | None:
    """The training seconds of the first record whose `column` (2: accuracy, 3: recovered) reached `target`."""
    return next((r[1] for r in records if r[column] is not None and r[column] >= target), None)


def held_out_set(params, raw_dir: Path, judge, n: int) -> tuple[HeldOut, float]:
    """The first `n` test images with evaluate's classic-box damage, and OpenCV NS's accuracy on them."""
    images, labels = load_split(raw_dir, "test")
    images, labels = images[:n], labels[:n]
    clean = to_unit_range(images)
    holes = damage_table.family_holes(skeletons(images), params.mask.seed)["classic"]
    masked = apply_masks(clean, holes, params.mask.fill)
    held_out = HeldOut(
        masked, clean, holes, labels, m.accuracy(read(judge, clean), labels), m.accuracy(read(judge, masked), labels)
    )
    opencv = m.accuracy(read(judge, classical.inpaint(masked, holes, damage_table.ORACLE)), labels)
    return held_out, opencv


def plot(runs: dict, targets: dict, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4))
    for recipe, records in runs.items():
        axis.plot([r[1] for r in records], [r[2] for r in records], marker=".", label=recipe)
    for name, value in targets.items():
        axis.axhline(value, color="grey", linestyle=":", linewidth=1)
        axis.annotate(
            f"{name} ({value:.2%})",
            (0.01, value),
            xycoords=("axes fraction", "data"),
            fontsize=8,
            color="grey",
            va="bottom",
        )
    axis.set_xscale("log")
    seconds = [r[1] for records in runs.values() for r in records]
    axis.set_xticks(
        [
            t
            for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
            if min(seconds) / 2 <= t <= max(seconds) * 2
        ]
    )
    axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel("training seconds (log scale; scoring excluded)")
    axis.set_ylabel("judge accuracy, held-out classic box")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_csv(runs: dict, path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recipe", "iteration", "train_seconds", "accuracy", "recovered", *DIAGNOSIS])
        for recipe, records in runs.items():
            writer.writerows(
                [recipe, i, f"{s:.2f}", *("" if v is None else f"{v:.4f}" for v in rest)] for i, s, *rest in records
            )


def read_csv(path: Path) -> dict:
    """The records a run wrote to `path`, per recipe, as AccuracyClock holds them."""
    runs = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            runs.setdefault(row["recipe"], []).append(
                (
                    int(row["iteration"]),
                    float(row["train_seconds"]),
                    float(row["accuracy"]),
                    *(float(row[k]) if row.get(k) else None for k in ("recovered", *DIAGNOSIS)),
                )
            )
    return runs


def ratio(chapter: float | None, chapter_seconds: float, ours: float | None) -> str:
    """The chapter's time over ours; a lower bound when the chapter never got there in its `chapter_seconds`."""
    if ours is None:
        return "-"
    return (
        f"{chapter / ours:.0f}x"
        if chapter
        else f"> {chapter_seconds / ours:.0f}x (chapter not there in {chapter_seconds:.0f} s)"
    )


def contenders(args) -> dict:
    """Each recipe's params and whether it trains on the chapter's box alone, in the order they race."""
    chosen = {
        name: (recipe_params(RECIPES[name], args.set), RECIPES[name] in CHAPTER_BOX_ONLY) for name in args.recipes
    }
    for name, *overrides in args.variant:
        if name in chosen:
            raise SystemExit(f"--variant {name}: the name is taken; give each variant a name of its own")
        chosen[name] = (params_with_overrides([*args.set, *overrides]), False)
    if not chosen:
        raise SystemExit("nothing to race: name --recipes, a --variant, or both")
    return chosen


def measure(racers: dict, every: int, raw_dir: Path, held_out: HeldOut, judge) -> dict:
    """Train each of `racers` (from `contenders`) with the clock on; its records per recipe."""
    runs = {}
    for recipe, (racer_params, chapter_box) in racers.items():
        data, mask = training_split(racer_params, raw_dir, chapter_box)
        run_params = dataclasses.replace(racer_params, mask=mask)
        steps = steps_per_epoch(run_params, len(data.clean))
        clock = AccuracyClock(held_out, judge, every, steps * run_params.gan.epochs)
        train_gan(run_params, data, [clock])
        runs[recipe] = clock.records
        print(
            f"{recipe}: {len(clock.records)} scores, final {clock.records[-1][2]:.2%} after "
            f"{clock.records[-1][1]:.0f} s",
            flush=True,
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipes",
        nargs="*",
        default=list(RECIPES),
        choices=list(RECIPES),
        help="the recipes to race (none: only the --variant ones)",
    )
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "KEY=VALUE"),
        help="also race the default with these params overridden, under NAME (repeatable)",
    )
    parser.add_argument("--every", type=int, default=100, help="score every N iterations")
    parser.add_argument("--held-out", type=int, default=2000, help="masked test images scored")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override params.yaml (nested keys too), for every recipe",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument(
        "--replot", action="store_true", help="no training: redraw the PNG and reprint the table from the CSV in --out"
    )
    args = parser.parse_args()

    params = params_with_overrides(args.set)
    racers = contenders(args)  # a bad override or a taken name fails here, before any training
    raw_dir = CACHE / params.data.dataset
    if not raw_dir.is_dir():
        fetch_dataset(params.data.dataset, raw_dir)
    judge = trained_readers(params, raw_dir, ["judge"])["judge"]
    held_out, opencv = held_out_set(params, raw_dir, judge, args.held_out)
    targets = {
        "chapter": CHAPTER_ACCURACY,
        "OpenCV NS": opencv,
        "recovered 0.95": held_out.masked_accuracy
        + RECOVERED_TARGET * (held_out.clean_accuracy - held_out.masked_accuracy),
    }
    print(
        f"held-out: {args.held_out} test images, clean {held_out.clean_accuracy:.2%}, masked "
        f"{held_out.masked_accuracy:.2%}, OpenCV NS {opencv:.2%}",
        flush=True,
    )

    table = args.out / "time_to_accuracy.csv"
    if args.replot:
        runs = read_csv(table)
    else:
        runs = measure(racers, args.every, raw_dir, held_out, judge)
        args.out.mkdir(parents=True, exist_ok=True)
        write_csv(runs, table)
    figure = args.out / "time_to_accuracy.png"
    plot(runs, targets, figure)

    columns = [
        ("chapter's 87.82%", 2, CHAPTER_ACCURACY),
        (f"OpenCV NS {opencv:.2%}", 2, opencv),
        (f"recovered {RECOVERED_TARGET}", 3, RECOVERED_TARGET),
    ]
    keys = ("chapter", "opencv", "recovered")
    reached = {recipe: [seconds_to(records, c, t) for _, c, t in columns] for recipe, records in runs.items()}
    print(
        "\n| recipe | " + " | ".join(f"s to {name}" for name, _, _ in columns) + " | final accuracy | final recovered |"
        " train s |\n|" + "---|" * (len(columns) + 4)
    )
    for recipe, records in runs.items():
        cells = ["not reached" if s is None else f"{s:.0f}" for s in reached[recipe]]
        final = records[-1]
        print(f"| {recipe} | " + " | ".join(cells) + f" | {final[2]:.2%} | {final[3]:.3f} | {final[1]:.0f} |")
    if "chapter" in reached:
        chapter_seconds = runs["chapter"][-1][1]
        for recipe in (r for r in reached if r != "chapter"):
            ratios = [ratio(a, chapter_seconds, b) for a, b in zip(reached["chapter"], reached[recipe])]
            print(
                f"\nchapter's time / {recipe}'s: "
                + ", ".join(f"{name}: {r}" for (name, _, _), r in zip(columns, ratios))
            )
    if args.replot:
        return

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment("benchmarks")
    with mlflow.start_run(run_name="time_to_accuracy"):
        mlflow.log_params(
            {
                "recipes": " ".join(args.recipes),
                "variants": "; ".join(" ".join(v) for v in args.variant),
                "every": args.every,
                "held_out": args.held_out,
                "set": " ".join(args.set),
            }
        )
        for recipe, records in runs.items():
            for i, _, a, _ in records:
                mlflow.log_metric(f"{recipe}_accuracy", a, step=i)
            for key, s in zip(keys, reached[recipe]):
                if s is not None:
                    mlflow.log_metric(f"{recipe}_seconds_to_{key}", s)
        mlflow.log_artifact(str(table))
        mlflow.log_artifact(str(figure))


if __name__ == "__main__":
    main()
