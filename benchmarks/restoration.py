"""Restoration benchmark: the classic GAN recipe, the inpainting recipe and OpenCV, on both datasets.

    DIGIT_RESTORE_MIRROR=../shared/datasets python benchmarks/restoration.py \
        [--datasets mnist fashion-mnist] [--recipes classic inpainting] [--seeds 0 1 2] [--epochs N]
        [--masked-classifier] [--set gan.recon_weight=1000 ...]

Uses params.yaml for everything else (mask, classifier, GAN hyper-parameters), trains the
classifier once per dataset, each recipe once per seed, and prints one markdown table:
clean / masked / restored accuracy, recovered fraction, L1 and PSNR in the hole, phone-number
success and training time. Full size by default; this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
import yaml

from pipeline import classical
from pipeline import metrics as m
from pipeline.config import CLASSIC_RECIPE, DATASETS, parse_params
from pipeline.datasets import load_split, to_unit_range
from pipeline.download import fetch_dataset
from pipeline.evaluate import read
from pipeline.inference import forward
from pipeline.masks import apply_masks, split_rng, square_masks
from pipeline.models import generator_input
from pipeline.train_classifier import train as train_classifier
from pipeline.train_gan import LossProgress, steps_per_epoch
from pipeline.train_gan import train as train_gan

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".data"
# "inpainting" is params.yaml's gan section as it stands.
RECIPES = {"classic": CLASSIC_RECIPE, "inpainting": {}}
COLUMNS = ["dataset", "restorer", "seed", "clean", "masked", "restored", "recovered", "L1 hole", "PSNR hole",
           "phone ok (masked -> restored)", "train s"]


def masked_split(params, raw: Path, split: str):
    images, labels = load_split(raw, split)
    clean = to_unit_range(images)
    holes = square_masks(len(clean), params.mask, split_rng(params.mask.seed, split))
    return images, labels, clean, holes, apply_masks(clean, holes, params.mask.fill)


def row(dataset, restorer, seed, acc_clean, acc_masked, restored, clean, holes, labels, classifier, seconds):
    acc = m.accuracy(read(classifier, restored), labels)
    recovered = m.recovered_fraction(acc_clean, acc_masked, acc)
    return {
        "dataset": dataset, "restorer": restorer, "seed": seed, "clean": acc_clean, "masked": acc_masked,
        "restored": acc, "recovered": recovered, "L1 hole": m.hole_mae(restored, clean, holes),
        "PSNR hole": m.hole_psnr(restored, clean, holes),
        "phone ok (masked -> restored)": f"{m.phone_number_success(acc_masked, 10):.3f} -> {m.phone_number_success(acc, 10):.3f}",
        "train s": seconds,
    }


def masked_classifier_row(params, dataset, train_masked, train_labels, masked, labels, acc_clean, acc_masked):
    """The classifier's recipe trained on masked images instead of clean ones, read on masked test images.
    No restorer feeds the clean classifier more than the visible pixels hold, so this is a reference for
    how much of the lost accuracy is there to recover with a classifier of this size and training."""
    as_uint8 = np.rint((train_masked[..., 0] + 1.0) * 127.5).astype(np.uint8)  # to_unit_range's inverse
    reader, _ = train_classifier(params.classifier, as_uint8, train_labels)
    acc = m.accuracy(read(reader, masked), labels)
    return {
        "dataset": dataset, "restorer": "none: classifier trained on masked images", "seed": "-",
        "clean": acc_clean, "masked": acc_masked, "restored": acc,
        "recovered": m.recovered_fraction(acc_clean, acc_masked, acc), "L1 hole": "-", "PSNR hole": "-",
        "phone ok (masked -> restored)": f"{m.phone_number_success(acc_masked, 10):.3f} -> {m.phone_number_success(acc, 10):.3f}",
        "train s": "-",
    }


def fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override gan.epochs")
    parser.add_argument("--masked-classifier", action="store_true",
                        help="also train params.classifier on the masked training images and score it on the masked "
                             "test images: what the visible pixels tell this classifier, with no restoration")
    parser.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="override params.yaml, as `dvc exp run -S` does (validated the same way)")
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for override in args.set:
        key, _, value = override.partition("=")
        section, _, name = key.partition(".")
        raw.setdefault(section, {})[name] = yaml.safe_load(value)
    base = parse_params(raw)
    rows = []
    for dataset in args.datasets:
        raw = CACHE / dataset
        if not raw.is_dir():
            fetch_dataset(dataset, raw)
        params = dataclasses.replace(base, data=dataclasses.replace(base.data, dataset=dataset))
        train_images, train_labels, train_clean, train_holes, train_masked = masked_split(params, raw, "train")
        _, labels, clean, holes, masked = masked_split(params, raw, "test")
        classifier, _ = train_classifier(params.classifier, train_images, train_labels)
        acc_clean = m.accuracy(read(classifier, clean), labels)
        acc_masked = m.accuracy(read(classifier, masked), labels)
        common = (clean, holes, labels, classifier)
        for method in classical.METHODS:
            started = time.perf_counter()
            restored = classical.inpaint(masked, holes, method)
            rows.append(row(dataset, f"opencv {method}", "-", acc_clean, acc_masked, restored, *common, 0.0))
            print(f"{dataset} {method}: {time.perf_counter() - started:.2f} s for {len(masked)} images")
        if args.masked_classifier:
            rows.append(masked_classifier_row(params, dataset, train_masked, train_labels, masked, labels,
                                              acc_clean, acc_masked))
        for recipe in args.recipes:
            for seed in args.seeds:
                gan_params = dataclasses.replace(params.gan, seed=seed, **RECIPES[recipe])
                if args.epochs:
                    gan_params = dataclasses.replace(gan_params, epochs=args.epochs)
                run_params = dataclasses.replace(params, gan=gan_params)
                steps = steps_per_epoch(run_params, len(train_clean))
                gan, seconds = train_gan(
                    run_params, train_masked, train_holes, train_clean, train_labels,
                    [LossProgress(gan_params.epochs, steps)],
                )
                restored = forward(gan.generator, generator_input(masked, holes))
                rows.append(row(dataset, recipe, seed, acc_clean, acc_masked, restored, *common, seconds))
                print(" | ".join(fmt(rows[-1][c]) for c in COLUMNS), flush=True)

    print("\n| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |")
    print("\nAcross seeds (mean, min..max):")
    for (dataset, restorer) in dict.fromkeys((r["dataset"], r["restorer"]) for r in rows if r["seed"] != "-"):
        values = [r for r in rows if r["dataset"] == dataset and r["restorer"] == restorer]
        for key in ("restored", "recovered", "L1 hole"):
            series = [r[key] for r in values]
            print(f"- {dataset} {restorer} {key}: {statistics.mean(series):.4f} ({min(series):.4f}..{max(series):.4f}), n={len(series)}")


if __name__ == "__main__":
    main()
