"""How well can the damaged digits be read at all? A bound to hold the restoration targets against.

    DIGIT_RESTORE_MIRROR=../shared/datasets python benchmarks/reading_ceiling.py [--epochs 8] [--batch-size 128] [--seed 0]

A restorer followed by the judge is itself a reader of the damaged image: whatever it draws, the digit the
judge reads is a function of the damaged pixels alone. So no restorer can make the judge read more of a
family's damaged test digits right than the best reader of those damaged digits does. This script trains a
reader stronger than the judge (two 3x3 convs per resolution with BatchNorm, 28 -> 14 -> 7, dense 256) on the
training digits with evaluate's four damage families drawn anew every epoch (equal weights, a training stream
of its own), then reads each family's test draw (the same draw as evaluate and benchmarks/restoration.py).

It prints, per family: the judge's accuracy on the clean and damaged test digits, this reader's accuracy on
the damaged ones, and the recovered fraction by the judge that a restorer would reach if the judge read its
restorations exactly as well as this reader reads the damage, beside the accuracy that a recovered fraction
of 0.93 / 0.95 needs. The reader is one trained model, not the best possible one: its accuracy is a lower
bound of what reading the damage allows, so a target above it is not proven out of reach, only unmet by
the strongest reader this project has tried.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from restoration import CACHE, params_with_overrides, trained_readers

from pipeline.common.image import IMAGE_SIDE, NUM_CLASSES
from pipeline.images.datasets import load_split, to_unit_range
from pipeline.images.fetch import fetch_dataset
from pipeline.images.masks import apply_masks, family_masks, skeletons
from pipeline.scoring import damage_table
from pipeline.scoring import metrics as m
from pipeline.scoring.inference import read

CEILING_STREAM = 4  # the reader's training damage, apart from masks.py's streams 0..3
TARGETS = (0.93, 0.95)


def build_damage_reader() -> keras.Model:
    """A stronger reader than the judge: two BatchNorm'd 3x3 convs at each of 28, 14 and 7 pixels, dense 256."""
    inputs = keras.Input((IMAGE_SIDE, IMAGE_SIDE, 1))
    x = inputs
    for filters in (32, 64, 128):
        for _ in range(2):
            x = layers.Activation("relu")(layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same")(x)))
        x = layers.MaxPooling2D(2)(x) if filters < 128 else x
    x = layers.Dropout(0.4)(layers.Dense(256, activation="relu")(layers.Flatten()(x)))
    return keras.Model(inputs, layers.Dense(NUM_CLASSES, activation="softmax")(x), name="damage_reader")


def damaged_epoch(clean, skeleton, fill: float, seed: int, epoch: int) -> np.ndarray:
    """The training digits, each with one of evaluate's families (equal odds), drawn from (seed, epoch)."""
    rng = np.random.default_rng([seed, CEILING_STREAM, epoch])
    families = list(damage_table.FAMILIES.values())
    chosen = rng.integers(len(families), size=len(clean))
    holes = np.zeros(skeleton.shape, bool)
    for i, family in enumerate(families):
        holes[chosen == i] = family_masks(skeleton[chosen == i], family, rng)
    return apply_masks(clean, holes, fill)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="64 gives the restorer's updates per epoch (gan.batch_size), to compare at equal updates",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    params = params_with_overrides([])
    raw = CACHE / params.data.dataset
    if not raw.is_dir():
        fetch_dataset(params.data.dataset, raw)
    judge = trained_readers(params, raw, ["judge"])["judge"]
    train_images, train_labels = load_split(raw, "train")
    test_images, test_labels = load_split(raw, "test")
    train_clean, train_skeleton = to_unit_range(train_images), skeletons(train_images)
    test_clean = to_unit_range(test_images)

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    reader = build_damage_reader()
    steps = args.epochs * (len(train_clean) // args.batch_size)
    reader.compile(
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    for epoch in range(args.epochs):
        damaged = damaged_epoch(train_clean, train_skeleton, params.mask.fill, args.seed, epoch)
        reader.fit(damaged, train_labels, batch_size=args.batch_size, epochs=epoch + 1, initial_epoch=epoch, verbose=2)
    print(f"trained in {time.perf_counter() - started:.0f} s")

    clean_judge = m.accuracy(read(judge, test_clean), test_labels)
    print(
        f"clean test digits: judge {clean_judge:.2%}, this reader "
        f"{m.accuracy(read(reader, test_clean), test_labels):.2%}\n"
    )
    needed = " | ".join(f"judge accuracy for {t}" for t in TARGETS)
    print(f"| family | judge on the damage | this reader on the damage | recovered if read as well | {needed} |")
    print("|---|---|---|---|" + "---|" * len(TARGETS))
    for family, holes in damage_table.family_holes(skeletons(test_images), params.mask.seed).items():
        masked = apply_masks(test_clean, holes, params.mask.fill)
        masked_judge = m.accuracy(read(judge, masked), test_labels)
        best = m.accuracy(read(reader, masked), test_labels)
        bound = m.recovered_fraction(clean_judge, masked_judge, best)
        targets = " | ".join(f"{masked_judge + t * (clean_judge - masked_judge):.2%}" for t in TARGETS)
        print(f"| {family} | {masked_judge:.2%} | {best:.2%} | {bound:.3f} | {targets} |")


if __name__ == "__main__":
    main()
