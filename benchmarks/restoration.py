"""Restoration benchmark: the table of damage family x restorer, for several recipes, seeds and datasets.

    DIGIT_RESTORE_MIRROR=../shared/datasets python benchmarks/restoration.py \
        [--datasets mnist fashion-mnist] [--recipes blind given_hole chapter] [--seeds 0 1 2] [--epochs N]
        [--set mask.families.strokes.weight=0 gan.recon_weight=30 ...] [--score GENERATOR.keras ...]

Uses params.yaml for everything else ("blind" is its gan section as it stands; "given_hole" is told
where the hole is; "chapter" is the chapter's own training, its loop included (pipeline/training/chapter_loop.py), on the
chapter's box alone). Trains the
two readers once per dataset and each recipe once per seed, with the damage of params `mask` (drawn
anew every iteration by the compiled loop), then scores every family of pipeline/scoring/damage_table.py, as
evaluate does: accuracy by the judge and by the second reader, recovered fraction, L1 in and outside
the damage, the share of undamaged pixels changed. Prints one markdown table and the worst seed per
family; full size by default: this is a benchmark, not a test. `--score` scores saved generators (e.g. another
commit's data/gan/generator.keras) on the same table instead of training any.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import yaml

from pipeline.common.config import DATASETS, parse_params
from pipeline.common.param_keys import set_override
from pipeline.images.datasets import load_split, to_unit_range
from pipeline.images.fetch import fetch_dataset
from pipeline.images.masks import (
    MaskedSplit,
    apply_masks,
    draw_damage,
    skeletons,
    split_rng,
)
from pipeline.scoring import damage_table
from pipeline.training.batches import steps_per_epoch
from pipeline.training.classifier import build_classifier, build_second_reader
from pipeline.training.classifier import train as train_classifier
from pipeline.training.progress import LossProgress
from pipeline.training.recipes import RECIPES
from pipeline.training.trainer import train as train_gan

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".data"
CHAPTER_BOX_ONLY = {"chapter"}  # the recipes trained on the chapter's box alone, as the chapter was
COLUMNS = [
    "dataset",
    "restorer",
    "seed",
    "family",
    "masked",
    "OpenCV NS (oracle)",
    "restored",
    "recovered",
    "L1 damage (NS)",
    "L1 damage",
    "changed outside",
    "train s",
]


def params_with_overrides(overrides: list[str]):
    """params.yaml with `KEY=VALUE` overrides (nested keys too), validated as `dvc exp run -S` values are."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for override in overrides:
        key, _, value = override.partition("=")
        set_override(raw, key, yaml.safe_load(value))
    return parse_params(raw)


def recipe_params(recipe: str, overrides: list[str]):
    """params.yaml with gan.recipe `recipe`, then `overrides`."""
    return params_with_overrides([f"gan.recipe={recipe}", *overrides])


def training_split(params, raw: Path, classic_only: bool) -> MaskedSplit:
    """The training images with the mask stage's draw of params `mask` (or of the chapter's box alone)."""
    images, labels = load_split(raw, "train")
    clean, skeleton = to_unit_range(images), skeletons(images)
    mask = params.mask
    if classic_only:
        mask = dataclasses.replace(mask, families={"classic": damage_table.FAMILIES["classic"]})
    holes = draw_damage(skeleton, mask.families, split_rng(mask.seed, "train"))
    return MaskedSplit(clean, labels, apply_masks(clean, holes, mask.fill), holes, skeleton), mask


READER_BUILDERS = {"judge": build_classifier, "second": build_second_reader}


def trained_readers(params, raw: Path, names=tuple(READER_BUILDERS)) -> dict:
    """The readers `names` (the judge, the second reader) of `params.classifier`, trained on the dataset's clean
    training images once and kept under benchmarks/.data (training is seeded and deterministic: the same params
    make the same readers, so a rerun need not train them again). A script that reads with the judge alone
    names it, and a cold cache does not train the second reader for nothing."""
    import keras

    images, labels = load_split(raw, "train")
    key = hashlib.sha256(json.dumps(dataclasses.asdict(params.classifier), sort_keys=True).encode()).hexdigest()[:12]
    readers = {}
    for name in names:
        build = READER_BUILDERS[name]
        path = raw / f"reader-{name}-{key}.keras"
        if not path.is_file():
            train_classifier(params.classifier, images, labels, build)[0].save(path)
        readers[name] = keras.models.load_model(path)
    return readers


def pair(table_row: dict, key: str) -> str:
    """`judge / second` of one statistic."""
    values = [table_row[f"{key}_{r}"] for r in damage_table.READERS]
    return " / ".join("-" if v is None else f"{v:.4f}" for v in values)


def rows_of(dataset, restorer, seed, damage: dict, seconds: float | None) -> list[dict]:
    rows = []
    for family, by in damage.items():
        restored, oracle = by["restored"], by[damage_table.ORACLE]
        rows.append(
            {
                "dataset": dataset,
                "restorer": restorer,
                "seed": seed,
                "family": family,
                "masked": pair(by["masked"], "accuracy"),
                "OpenCV NS (oracle)": pair(oracle, "accuracy"),
                "restored": pair(restored, "accuracy"),
                "recovered": pair(restored, "recovered"),
                "L1 damage (NS)": f"{oracle['l1_damage']:.3f}",
                "L1 damage": f"{restored['l1_damage']:.3f}",
                "changed outside": f"{restored['changed_outside']:.3%}",
                "train s": "-" if seconds is None else f"{seconds:.0f}",
                "_recovered": [restored[f"recovered_{r}"] for r in damage_table.READERS],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist"], choices=DATASETS)
    parser.add_argument("--recipes", nargs="+", default=["blind"], choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override gan.epochs")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override params.yaml, as `dvc exp run -S` does (nested keys too; validated the same way)",
    )
    parser.add_argument(
        "--score",
        nargs="+",
        type=Path,
        default=[],
        metavar="GENERATOR",
        help="score these saved generators (.keras) instead of training the recipes",
    )
    args = parser.parse_args()

    base = params_with_overrides(args.set)  # a bad override fails here, before any training
    rows = []
    for dataset in args.datasets:
        raw_dir = CACHE / dataset
        if not raw_dir.is_dir():
            fetch_dataset(dataset, raw_dir)
        params = dataclasses.replace(base, data=dataclasses.replace(base.data, dataset=dataset))
        readers = trained_readers(params, raw_dir)
        test_images, test_labels = load_split(raw_dir, "test")
        test_clean, test_skeleton = to_unit_range(test_images), skeletons(test_images)
        clean_read = damage_table.readings(readers, test_clean)
        print(
            f"{dataset}: the readers read "
            + " / ".join(f"{(clean_read[r] == test_labels).mean():.2%}" for r in damage_table.READERS)
            + " of the clean test images"
        )
        if args.score:
            import keras

            for path in args.score:
                damage = damage_table.table(
                    keras.models.load_model(path),
                    readers,
                    test_clean,
                    test_labels,
                    test_skeleton,
                    params.mask.seed,
                    params.mask.fill,
                )
                rows += rows_of(dataset, str(path), "-", damage, None)
            continue
        for recipe in args.recipes:
            params = recipe_params(recipe, [f"data.dataset={dataset}", *args.set])
            data, mask = training_split(params, raw_dir, recipe in CHAPTER_BOX_ONLY)
            for seed in args.seeds:
                gan_params = dataclasses.replace(
                    params.gan, seed=seed, **({"epochs": args.epochs} if args.epochs else {})
                )
                run_params = dataclasses.replace(params, gan=gan_params, mask=mask)
                steps = steps_per_epoch(run_params, len(data.clean))
                gan, seconds = train_gan(run_params, data, [LossProgress(gan_params.epochs, steps)])
                started = time.perf_counter()
                damage = damage_table.table(
                    gan.generator, readers, test_clean, test_labels, test_skeleton, params.mask.seed, params.mask.fill
                )
                rows += rows_of(dataset, recipe, seed, damage, seconds)
                print(
                    f"{dataset} {recipe} seed {seed}: trained in {seconds:.0f} s, scored in "
                    f"{time.perf_counter() - started:.0f} s",
                    flush=True,
                )
                for r in rows[-len(damage) :]:
                    print(" | ".join(str(r[c]) for c in COLUMNS), flush=True)

    print("\nAccuracy, recovered fraction: judge / second reader. OpenCV NS is given the true hole.\n")
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |")
    print("\nWorst seed per family (recovered fraction, the lower of the two readers):")
    for key in dict.fromkeys((r["dataset"], r["restorer"], r["family"]) for r in rows):
        worst = [
            min(v for v in r["_recovered"] if v is not None)
            for r in rows
            if (r["dataset"], r["restorer"], r["family"]) == key
        ]
        print(f"- {' '.join(key)}: {min(worst):.4f} (n={len(worst)})")


if __name__ == "__main__":
    main()
