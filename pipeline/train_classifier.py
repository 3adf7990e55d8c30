"""Stage 3: train the digit readers on the clean training images (pipeline/training/classifier.py): the judge
and the second reader."""

from __future__ import annotations

import sys

from pipeline.common import paths, tracking
from pipeline.common.atomic import save_json, save_keras
from pipeline.common.cli import run_stage
from pipeline.common.config import Params
from pipeline.images.datasets import load_split, to_unit_range
from pipeline.serving import registry
from pipeline.training.classifier import build_second_reader, train


def main(params: Params) -> None:
    images, labels = load_split(paths.RAW_DIR, "train", params.data.max_train)
    with tracking.stage_run(params, "train_classifier", "classifier") as (client, run_id, parent_id):
        model, history = train(params.classifier, images, labels)
        save_keras(model, paths.CLASSIFIER_MODEL)
        second, second_history = train(params.classifier, images, labels, build_second_reader)
        save_keras(second, paths.SECOND_READER_MODEL)
        result = {
            "val_accuracy": history["val_accuracy"][-1],
            "val_loss": history["val_loss"][-1],
            "second_reader_val_accuracy": second_history["val_accuracy"][-1],
        }
        save_json(paths.CLASSIFIER_METRICS, result)
        tracking.log_metric_history(client, run_id, history, first_step=1)
        second_history = {f"second_reader_{k}": v for k, v in second_history.items()}
        tracking.log_metric_history(client, run_id, second_history, first_step=1)
        tracking.log_to_parent(client, parent_id, {f"classifier_{k}": v for k, v in result.items()})
        registry.log_keras(
            model,
            paths.CLASSIFIER_MODEL,
            "classifier",
            params.data.dataset,
            to_unit_range(images[:2]),
            step=params.classifier.epochs,
        )
        print(
            f"validation accuracy {result['val_accuracy']:.4f}, second reader {result['second_reader_val_accuracy']:.4f}"
        )


if __name__ == "__main__":
    sys.exit(run_stage(main, "train_classifier"))
