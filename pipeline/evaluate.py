"""Stage 5: read clean, damaged and restored test images with two readers; write metrics and plots.

"restored" is the trained generator's output: a blind generator gets the damaged image only. OpenCV's
classical inpainting (Telea, Navier-Stokes), given the true hole, is scored beside it on the same
damage as the bar to clear. Headline numbers are on the mask stage's test draw; the table of damage
family x restorer (pipeline/scoring/damage_table.py) scores every family on draws of its own.
"""

from __future__ import annotations

import sys

import keras
import mlflow
import numpy as np

from pipeline.common import paths, tracking
from pipeline.common.atomic import save_csv, save_json
from pipeline.common.cli import run_stage
from pipeline.common.config import Params
from pipeline.images import figures
from pipeline.images.masks import apply_masks
from pipeline.images.splits import load_masked_split
from pipeline.scoring import classical, damage_table
from pipeline.scoring import metrics as m
from pipeline.scoring.inference import generator_reading, read
from pipeline.serving import registry
from pipeline.training.models import is_blind, with_damage_threshold

VARIANTS = ("clean", "masked", "restored")
GRID_FAMILY_IMAGES = 8  # test images per family in results/damage_grid.png


def restorations(generator, masked, holes) -> dict:
    """The generator's restoration ("restored") and each classical method's, of the same masked images."""
    restored = {"restored": damage_table.restore(generator, masked, holes)}
    return restored | {name: classical.inpaint(masked, holes, name) for name in classical.METHODS}


def score(params: Params, images: dict, predicted: dict, labels, holes) -> dict:
    """metrics.json content from the images of each variant and the classifier's readings of them."""
    acc = {v: m.accuracy(p, labels) for v, p in predicted.items()}
    per_class = {v: m.per_class_accuracy(predicted[v], labels) for v in VARIANTS}
    digits = params.evaluate.phone_digits

    def hole(variant: str) -> dict:
        return {
            "mae": m.hole_mae(images[variant], images["clean"], holes),
            "psnr": m.hole_psnr(images[variant], images["clean"], holes),
        }

    return {
        "test_images": int(len(labels)),
        "accuracy": {v: acc[v] for v in VARIANTS},
        "recovered_fraction": m.recovered_fraction(acc["clean"], acc["masked"], acc["restored"]),
        "hole": {f"{stat}_{v}": value for v in ("masked", "restored") for stat, value in hole(v).items()},
        "phone_number": {"digits": digits, **{v: m.phone_number_success(acc[v], digits) for v in VARIANTS}},
        "per_class": {c: {v: per_class[v][c] for v in VARIANTS} for c in per_class["clean"]},
        "baselines": {
            name: {
                "accuracy": acc[name],
                "recovered_fraction": m.recovered_fraction(acc["clean"], acc["masked"], acc[name]),
                **{f"hole_{stat}": value for stat, value in hole(name).items()},
            }
            for name in images
            if name not in VARIANTS
        },
    }


def damage_grid_rows(generator, clean, skeleton, seed: int, fill: float) -> dict[str, np.ndarray]:
    """For the first test images: per family, the damaged images and their restorations (rows of a picture)."""
    rows = {"clean": clean}
    for family, holes in damage_table.family_holes(skeleton, seed).items():
        masked = apply_masks(clean, holes, fill)
        rows |= {f"{family}\ndamaged": masked, f"{family}\nrestored": damage_table.restore(generator, masked, holes)}
    return rows


def main(params: Params) -> None:
    test = load_masked_split(params, "test")
    clean, labels, masked, holes = test.clean, test.labels, test.masked, test.holes
    with tracking.stage_run(params, "evaluate", "evaluate") as (client, run_id, parent_id):
        classifier = keras.models.load_model(paths.CLASSIFIER_MODEL)
        readers = {"judge": classifier, "second": keras.models.load_model(paths.SECOND_READER_MODEL)}
        generator = with_damage_threshold(
            keras.models.load_model(paths.GENERATOR_MODEL), params.evaluate.damage_threshold
        )
        variants = {"clean": clean, "masked": masked, **restorations(generator, masked, holes)}
        predicted = {v: read(classifier, x) for v, x in variants.items()}
        result = score(params, variants, predicted, labels, holes)
        second = {v: m.accuracy(read(readers["second"], variants[v]), labels) for v in VARIANTS}
        result["second_reader"] = {"accuracy": second, "recovered_fraction": m.recovered_fraction(*second.values())}
        result["restorer"] = "blind" if is_blind(generator) else "given the hole"
        result["damage"] = damage_table.table(
            generator, readers, clean, labels, test.skeleton, params.mask.seed, params.mask.fill
        )
        reading = generator_reading(generator, masked, holes)
        if reading is not None:
            result["generator_reading_accuracy"] = m.accuracy(reading, labels)

        save_json(paths.METRICS, result)
        save_csv(
            paths.PER_CLASS,
            ["class", *VARIANTS],
            [[c, *(f"{row[v]:.4f}" for v in VARIANTS)] for c, row in result["per_class"].items()],
        )
        # One row per test image: what it is and what the classifier read in each variant. DVC draws the confusion
        # matrix of the restored images from it; which digits the restorer turns into which is the error budget.
        readings = [[digit, *(predicted[v][i] for v in VARIANTS)] for i, digit in enumerate(labels)]
        save_csv(paths.READINGS, ["digit", *VARIANTS], readings)
        save_csv(paths.DAMAGE_TABLE, *damage_table.csv_rows(result["damage"]))
        n = params.evaluate.grid_digits
        figures.save_figure(
            figures.labelled_grid(variants["restored"][:n], labels[:n], predicted["restored"][:n]), paths.RESTORED_GRID
        )
        figures.save_figure(figures.per_class_bars(result["per_class"]), paths.PER_CLASS_PLOT)
        figures.save_figure(figures.accuracy_by_damage(result["damage"]), paths.DAMAGE_PLOT)
        k = GRID_FAMILY_IMAGES
        grid = damage_grid_rows(generator, clean[:k], test.skeleton[:k], params.mask.seed, params.mask.fill)
        figures.save_figure(
            figures.sample_grid(grid, f"Restorations by damage family ({result['restorer']})"), paths.DAMAGE_GRID
        )

        # The chain is logged before the metrics: MLflow links a run's metrics to a model logged into it by reading
        # each one's history back, one request per metric (~150 here, half a second each on a busy authenticated
        # server); logged after it with its model id, they are linked by the one request that logs them.
        chain, decisions = registry.record_evaluation(params, result, clean, masked, holes)
        flat = m.flatten_metrics(result)
        mlflow.log_metrics(flat, model_id=chain.model_id)
        tracking.log_to_parent(client, parent_id, flat)
        for path in (
            paths.METRICS,
            paths.PER_CLASS,
            paths.READINGS,
            paths.RESTORED_GRID,
            paths.PER_CLASS_PLOT,
            paths.DAMAGE_TABLE,
            paths.DAMAGE_PLOT,
            paths.DAMAGE_GRID,
        ):
            mlflow.log_artifact(str(path))
        acc = result["accuracy"]
        print(
            f"{result['restorer']} restorer: accuracy clean {acc['clean']:.4f} masked {acc['masked']:.4f} "
            f"restored {acc['restored']:.4f}; recovered fraction {result['recovered_fraction']}; "
            + ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in result["baselines"].items())
        )
        for family, by in result["damage"].items():
            r = by["restored"]
            recovered = " / ".join(
                "n/a" if r[f"recovered_{k}"] is None else f"{r[f'recovered_{k}']:.3f}" for k in damage_table.READERS
            )
            print(
                f"  {family}: recovered {recovered} (judge / second reader), "
                f"L1 in the damage {r['l1_damage']:.3f} (OpenCV {by[damage_table.ORACLE]['l1_damage']:.3f}), "
                f"undamaged pixels changed {r['changed_outside']:.3%}"
            )
        print("\n".join(decisions))


if __name__ == "__main__":
    sys.exit(run_stage(main, "evaluate"))
