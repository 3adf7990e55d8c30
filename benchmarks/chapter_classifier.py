"""The chapter's digit classifier as published, beside the judge: how each reads clean, damaged and restored digits.

    DIGIT_RESTORE_MIRROR=../shared/datasets python benchmarks/chapter_classifier.py \
        [--chapter-seeds 0 1 2] [--score GENERATOR.keras ...]

The judge (pipeline/training/classifier.py `build_classifier`) is the chapter's CNN with a single Dropout(0.2),
after its third conv. The chapter's `train_mnist` has one after each of its three convs. The chapter's
published figures (74.9-75.13% of its damaged test digits, 87.82% of its restorations) were read by that
network, so a reproduction read by the judge is read by another model. This script trains the published network
with the judge's training (params.yaml `classifier`: same optimiser, batch, epochs, validation split and seed)
and prints, for both, the accuracy on the clean test digits and on each family of evaluate's table: damaged,
and restored by each generator: the chapter's recipe trained on each of `--chapter-seeds` (as
`restoration.py --recipes chapter` trains it) and each saved generator given (e.g. data/gan/generator.keras).
Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import keras
from keras import layers
from restoration import CACHE, params_with_overrides, recipe_params, trained_readers, training_split

from pipeline.common.image import IMAGE_SIDE, NUM_CLASSES
from pipeline.images.datasets import load_split, to_unit_range
from pipeline.images.fetch import fetch_dataset
from pipeline.images.masks import apply_masks, skeletons
from pipeline.scoring import damage_table
from pipeline.scoring.inference import read
from pipeline.training.batches import steps_per_epoch
from pipeline.training.classifier import train as train_classifier
from pipeline.training.progress import LossProgress
from pipeline.training.trainer import train as train_gan


def build_published_classifier() -> keras.Model:
    """The chapter's `train_mnist` network: conv 32 s2 / 64 s2 / 128, each followed by ReLU and Dropout(0.2),
    dense 1024, softmax over the 10 classes."""
    inputs = keras.Input((IMAGE_SIDE, IMAGE_SIDE, 1), name="image")
    x = inputs
    for filters, strides in ((32, 2), (64, 2), (128, 1)):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", activation="relu")(x)
        x = layers.Dropout(0.2)(x)
    x = layers.Dense(1024, activation="relu")(layers.Flatten()(x))
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="published_classifier")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--chapter-seeds",
        nargs="*",
        type=int,
        default=[],
        metavar="SEED",
        help="train the chapter's recipe on each seed and read its restorations",
    )
    parser.add_argument(
        "--score",
        nargs="+",
        type=Path,
        default=[],
        metavar="GENERATOR",
        help="also read these saved generators' restorations (.keras)",
    )
    args = parser.parse_args()

    params = params_with_overrides([])
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, dataset="mnist"))
    raw = CACHE / "mnist"
    if not raw.is_dir():
        fetch_dataset("mnist", raw)
    images, labels = load_split(raw, "train")
    published, history = train_classifier(params.classifier, images, labels, build_published_classifier)
    readers = {"judge": trained_readers(params, raw, ["judge"])["judge"], "published": published}
    print(f"published network: validation accuracy {history['val_accuracy'][-1]:.4f} (the chapter's: 0.9887)")

    test_images, test_labels = load_split(raw, "test")
    clean = to_unit_range(test_images)
    generators = {str(path): keras.models.load_model(path) for path in args.score}
    chapter = recipe_params("chapter", [])
    if args.chapter_seeds:
        data, mask = training_split(chapter, raw, True)  # one draw of the chapter's box for every seed
    for seed in args.chapter_seeds:
        run = dataclasses.replace(chapter, gan=dataclasses.replace(chapter.gan, seed=seed), mask=mask)
        steps = steps_per_epoch(run, len(data.clean))
        generators[f"the chapter's recipe, seed {seed}"] = train_gan(run, data, [LossProgress(run.gan.epochs, steps)])[
            0
        ].generator
    print("\n| images | " + " | ".join(readers) + " |\n|---|" + "---|" * len(readers))

    def row(name, images):
        print(
            f"| {name} | "
            + " | ".join(f"{(read(r, images) == test_labels).mean():.2%}" for r in readers.values())
            + " |"
        )

    row("clean", clean)
    for family, holes in damage_table.family_holes(skeletons(test_images), params.mask.seed).items():
        masked = apply_masks(clean, holes, params.mask.fill)
        row(f"{family}: damaged", masked)
        for name, generator in generators.items():
            row(f"{family}: restored by {name}", damage_table.restore(generator, masked, holes))


if __name__ == "__main__":
    main()
