"""Stage 5: read clean, masked and restored test images with the classifier; write metrics and plots.

"restored" is the trained generator's output. OpenCV's classical inpainting
(Telea, Navier-Stokes) is scored beside it on the same holes, as the bar to
clear, and the generator is also tried on holes it was not trained on.
"""

from __future__ import annotations

import csv
import dataclasses
import sys

import keras
import mlflow

from pipeline import classical, figures, paths, registry, tracking
from pipeline import metrics as m
from pipeline.atomic import atomic_path, save_json
from pipeline.cli import run_stage
from pipeline.config import Params
from pipeline.inference import forward
from pipeline.mask import load_masked_split
from pipeline.masks import apply_masks, split_rng, square_masks
from pipeline.models import DIGIT_READING, generator_input

VARIANTS = ("clean", "masked", "restored")
# Unseen holes: (side, first corner row/col, last corner row/col). Squares of several sides at the
# classic corner range 8..11, and the classic 8x8 hole anywhere in the central 20x20.
GENERALISATION = {
    "4x4": (4, 8, 11),
    "8x8": (8, 8, 11),
    "12x12": (12, 8, 11),
    "14x14": (14, 8, 11),
    "8x8_anywhere": (8, 4, 16),
}


def restorations(generator, masked, holes) -> dict:
    """The generator's restoration ("restored") and each classical method's, of the same masked images."""
    restored = {"restored": forward(generator, generator_input(masked, holes))}
    return restored | {name: classical.inpaint(masked, holes, name) for name in classical.METHODS}


def generator_reading(generator, masked, holes):
    """The digit the generator itself read in each masked image (gan.reader_weight > 0), or None if it has no
    reader. Beside the judge's reading of the restoration it splits what is left: digits the generator
    misread, and digits it read right but drew so that the judge reads them otherwise."""
    if DIGIT_READING not in [layer.name for layer in generator.layers]:
        return None
    reader = keras.Model(generator.input, generator.get_layer(DIGIT_READING).output)
    return forward(reader, generator_input(masked, holes)).argmax(axis=1)


def read(classifier, images):
    return forward(classifier, images).argmax(axis=1)


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


def generalisation(params: Params, generator, classifier, clean, labels, trained: dict) -> dict:
    """Accuracy of masked, classical and restored images for each hole setting in GENERALISATION.
    `trained`: those accuracies on the holes of the mask stage, reused for the setting that makes the same holes."""
    result = {}
    for name, (side, first, last) in GENERALISATION.items():
        setting = dataclasses.replace(
            params.mask, size=side, count=1, row_min=first, row_max=last, col_min=first, col_max=last
        )
        if setting == params.mask:
            result[name] = trained
            continue
        holes = square_masks(len(clean), setting, split_rng(params.mask.seed, "test"))
        masked = apply_masks(clean, holes, params.mask.fill)
        variants = {"masked": masked, **restorations(generator, masked, holes)}
        result[name] = {v: m.accuracy(read(classifier, x), labels) for v, x in variants.items()}
    return result


def write_csv(path, header: list[str], rows: list[list]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def main(params: Params) -> None:
    clean, labels, masked, holes = load_masked_split(params, "test")
    with tracking.stage_run(params, "evaluate", "evaluate") as (client, run_id, parent_id):
        classifier = keras.models.load_model(paths.CLASSIFIER_MODEL)
        generator = keras.models.load_model(paths.GENERATOR_MODEL)
        variants = {"clean": clean, "masked": masked, **restorations(generator, masked, holes)}
        predicted = {v: read(classifier, x) for v, x in variants.items()}
        result = score(params, variants, predicted, labels, holes)
        trained = {"masked": result["accuracy"]["masked"], "restored": result["accuracy"]["restored"]}
        trained |= {name: baseline["accuracy"] for name, baseline in result["baselines"].items()}
        result["generalisation"] = generalisation(params, generator, classifier, clean, labels, trained)
        reading = generator_reading(generator, masked, holes)
        if reading is not None:
            result["generator_reading_accuracy"] = m.accuracy(reading, labels)

        save_json(paths.METRICS, result)
        write_csv(
            paths.PER_CLASS,
            ["class", *VARIANTS],
            [[c, *(f"{row[v]:.4f}" for v in VARIANTS)] for c, row in result["per_class"].items()],
        )
        # One row per test image: what it is and what the classifier read in each variant. DVC draws the confusion
        # matrix of the restored images from it; which digits the restorer turns into which is the error budget.
        readings = [[digit, *(predicted[v][i] for v in VARIANTS)] for i, digit in enumerate(labels)]
        write_csv(paths.READINGS, ["digit", *VARIANTS], readings)
        columns = list(next(iter(result["generalisation"].values())))
        write_csv(
            paths.GENERALISATION,
            ["hole_side", *columns],
            [
                [GENERALISATION[name][0], *(f"{row[c]:.4f}" for c in columns)]
                for name, row in result["generalisation"].items()
                if not name.endswith("anywhere")
            ],
        )
        n = params.evaluate.grid_digits
        figures.save_figure(figures.labelled_grid(variants["restored"][:n], labels[:n], predicted["restored"][:n]), paths.RESTORED_GRID)
        figures.save_figure(figures.per_class_bars(result["per_class"]), paths.PER_CLASS_PLOT)
        figures.save_figure(figures.accuracy_by_hole(result["generalisation"]), paths.GENERALISATION_PLOT)

        flat = m.flatten_metrics(result)
        mlflow.log_metrics(flat)
        tracking.log_to_parent(client, parent_id, flat)
        for path in (paths.METRICS, paths.PER_CLASS, paths.READINGS, paths.RESTORED_GRID, paths.PER_CLASS_PLOT,
                     paths.GENERALISATION, paths.GENERALISATION_PLOT):
            mlflow.log_artifact(str(path))
        decisions = registry.record_evaluation(params, result, clean, masked, holes)
        acc = result["accuracy"]
        print(
            f"accuracy clean {acc['clean']:.4f} masked {acc['masked']:.4f} restored {acc['restored']:.4f}; "
            f"recovered fraction {result['recovered_fraction']}; "
            + ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in result["baselines"].items())
        )
        print("\n".join(decisions))


if __name__ == "__main__":
    sys.exit(run_stage(main))
