"""Stage 5: read clean, masked and restored test images with the classifier; write metrics and plots."""

from __future__ import annotations

import csv
import sys

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.config import Params
from pipeline.errors import PipelineError

VARIANTS = ("clean", "masked", "restored")
PREDICT_BATCH = 1000


def score(params: Params, images: dict, predicted: dict, labels, holes) -> dict:
    """metrics.json content from the classifier's predictions on each variant of the test images."""
    from pipeline import metrics as m

    acc = {v: m.accuracy(predicted[v], labels) for v in VARIANTS}
    per_class = {v: m.per_class_accuracy(predicted[v], labels) for v in VARIANTS}
    digits = params.evaluate.phone_digits
    return {
        "test_images": int(len(labels)),
        "accuracy": acc,
        "recovered_fraction": m.recovered_fraction(acc["clean"], acc["masked"], acc["restored"]),
        "hole": {
            f"{stat}_{v}": fn(images[v], images["clean"], holes)
            for stat, fn in (("mae", m.hole_mae), ("psnr", m.hole_psnr))
            for v in ("masked", "restored")
        },
        "phone_number": {"digits": digits, **{v: m.phone_number_success(acc[v], digits) for v in VARIANTS}},
        "per_class": {c: {v: per_class[v][c] for v in VARIANTS} for c in per_class["clean"]},
    }


def write_per_class_csv(per_class: dict) -> None:
    from pipeline.atomic import atomic_path

    with atomic_path(paths.PER_CLASS) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", *VARIANTS])
        for c, row in per_class.items():
            writer.writerow([c, *(f"{row[v]:.4f}" for v in VARIANTS)])


def main(params: Params) -> None:
    import keras
    import mlflow

    from pipeline import figures, tracking
    from pipeline.atomic import load_npz, save_figure, save_json
    from pipeline.datasets import load_split, to_unit_range
    from pipeline.metrics import flatten_metrics

    images, labels = load_split(paths.RAW_DIR, "test", params.data.max_test)
    masked_npz = load_npz(paths.MASKED_DIR / "test.npz")
    if len(masked_npz["masked"]) != len(images):
        raise PipelineError(
            f"{paths.MASKED_DIR / 'test.npz'} holds {len(masked_npz['masked'])} images but {paths.RAW_DIR} gives "
            f"{len(images)} for data.max_test={params.data.max_test}; rerun the mask stage (dvc repro)"
        )
    with tracking.stage_run(params, "evaluate", "evaluate") as (client, run_id, parent_id):
        classifier = keras.models.load_model(paths.CLASSIFIER_MODEL)
        generator = keras.models.load_model(paths.GENERATOR_MODEL)
        variants = {"clean": to_unit_range(images), "masked": masked_npz["masked"]}
        variants["restored"] = generator.predict(variants["masked"], batch_size=PREDICT_BATCH, verbose=0)
        predicted = {
            v: classifier.predict(variants[v], batch_size=PREDICT_BATCH, verbose=0).argmax(axis=1) for v in VARIANTS
        }
        result = score(params, variants, predicted, labels, masked_npz["mask"])

        save_json(paths.METRICS, result)
        write_per_class_csv(result["per_class"])
        n = params.evaluate.grid_digits
        grid = figures.labelled_grid(variants["restored"][:n], labels[:n], predicted["restored"][:n])
        save_figure(grid, paths.RESTORED_GRID)
        bars = figures.per_class_bars(result["per_class"])
        save_figure(bars, paths.PER_CLASS_PLOT)

        flat = flatten_metrics(result)
        mlflow.log_metrics(flat)
        tracking.log_to_parent(client, parent_id, flat)
        for path in (paths.METRICS, paths.PER_CLASS, paths.RESTORED_GRID, paths.PER_CLASS_PLOT):
            mlflow.log_artifact(str(path))
        acc = result["accuracy"]
        print(
            f"accuracy clean {acc['clean']:.4f} masked {acc['masked']:.4f} restored {acc['restored']:.4f}; "
            f"recovered fraction {result['recovered_fraction']}"
        )


if __name__ == "__main__":
    sys.exit(run_stage(main))
