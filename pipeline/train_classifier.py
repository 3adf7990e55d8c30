"""Stage 3: train the classic CNN digit classifier on the clean training images; it is the judge in evaluate."""

from __future__ import annotations

import sys

from pipeline import paths
from pipeline.cli import run_stage
from pipeline.config import Params


def main(params: Params) -> None:
    import keras
    import mlflow

    from pipeline import tracking
    from pipeline.atomic import save_json, save_keras
    from pipeline.datasets import load_split, to_unit_range
    from pipeline.models import build_classifier

    c = params.classifier
    images, labels = load_split(paths.RAW_DIR, "train", params.data.max_train)
    with tracking.stage_run(params, "train_classifier", "classifier") as (client, run_id, parent_id):
        keras.utils.set_random_seed(c.seed)
        model = build_classifier()
        model.compile(
            optimizer=keras.optimizers.Adam(c.lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        history = model.fit(
            to_unit_range(images),
            labels,
            batch_size=c.batch_size,
            epochs=c.epochs,
            validation_split=c.validation_split,
            verbose=2,
        ).history
        save_keras(model, paths.CLASSIFIER_MODEL)
        result = {"val_accuracy": history["val_accuracy"][-1], "val_loss": history["val_loss"][-1]}
        save_json(paths.CLASSIFIER_METRICS, result)
        tracking.log_metric_history(client, run_id, history, first_step=1)
        tracking.log_to_parent(client, parent_id, {f"classifier_{k}": v for k, v in result.items()})
        mlflow.log_artifact(str(paths.CLASSIFIER_MODEL), "model")
        print(f"validation accuracy {result['val_accuracy']:.4f}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
