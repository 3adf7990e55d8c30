"""The trained networks as registered MLflow models, and the `champion` alias.

Names, one set per dataset (a Fashion-MNIST generator is a different product from an MNIST one):
`digit-restore-generator-<dataset>` and `digit-restore-classifier-<dataset>` (Keras flavor, logged by
train_gan and train_classifier), and `digit-restore-<dataset>`, the pyfunc that restores and reads
(pipeline/serving/chain.py, logged by evaluate). Each version keeps the run that made it; its logged model
holds that run's metrics, and its tags say what evaluate measured.

evaluate moves the alias `champion` of the generator and of the chain to its versions only when
their recovered fraction beats the champion's measured on the same test images and holes (the
version tag `comparison_context`); numbers from other settings are not comparable, so they never
take the alias from a champion (set it by hand with `MlflowClient().set_registered_model_alias`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
from importlib import metadata
from pathlib import Path

import keras
import mlflow
import mlflow.keras
import numpy as np
import tensorflow as tf
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.tracking import MlflowClient

from pipeline.common import paths
from pipeline.common.config import Params
from pipeline.serving.chain import RestoreAndRead, restore_and_read
from pipeline.serving.picture import ANY_COUNT
from pipeline.serving.preprocess import NO_FILL_VALUE
from pipeline.training.models import generator_input, is_blind, with_damage_threshold

CHAMPION = "champion"
FILE_TAG = "file_sha256"
CONTEXT_TAG = "comparison_context"
SCORE_TAG = "recovered_fraction"


def model_name(role: str, dataset: str) -> str:
    """role: "generator", "classifier", or "" for the chain that restores and reads."""
    return f"digit-restore-{role}-{dataset}" if role else f"digit-restore-{dataset}"


def pip_requirements(*packages: str) -> list[str]:
    """Given explicitly: inferring them loads the model in a subprocess and costs 8-10 s per model. `packages`:
    more distributions the model needs, pinned at their installed versions."""
    return [
        f"tensorflow-cpu=={tf.__version__}",
        f"keras=={keras.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        *(f"{name}=={metadata.version(name)}" for name in packages),
    ]


def file_sha256(path: str | Path) -> str:
    """How evaluate finds the version of the generator file DVC gave it, also when DVC restored it from cache."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _save_keras(path, **kwargs):
    # mlflow.keras.save_model writes the input example before it creates `path` (mlflow#16183, open in 3.17).
    os.makedirs(path, exist_ok=True)
    kwargs.pop("validate_serving_input")
    mlflow.keras.save_model(path=path, **kwargs)


_KERAS_FLAVOR = types.SimpleNamespace(__name__="mlflow.keras", save_model=_save_keras)


def log_keras(model: keras.Model, path: str | Path, role: str, dataset: str, example: np.ndarray, step: int = 0):
    """Log `model` into the active run and register it, tagged with the SHA-256 of the file it was saved
    to (`path`); return its ModelVersion.

    The run's metrics at `step` are linked to the logged model (MLflow does that at log time), so log
    them first. The serving check of the input example is skipped: it loads the model again (~5 s);
    tests/test_serving.py serves the chain for real instead.
    """
    name = model_name(role, dataset)
    info = Model.log(
        artifact_path=None,
        name=role,
        flavor=_KERAS_FLAVOR,
        model=model,
        signature=infer_signature(example, model.predict(example, verbose=0)),
        input_example=example,
        pip_requirements=pip_requirements(),
        registered_model_name=name,
        step=step,
        validate_serving_input=False,
    )
    client = MlflowClient()
    version = info.registered_model_version
    client.set_model_version_tag(name, version, FILE_TAG, file_sha256(path))
    client.set_model_version_tag(name, version, "dataset", dataset)
    return client.get_model_version(name, version)


def find_version(client: MlflowClient, name: str, path: str | Path):
    """The registered version logged from the file at `path`, or None."""
    try:
        found = client.search_model_versions(f"name = '{name}' and tags.{FILE_TAG} = '{file_sha256(path)}'")
    except MlflowException:  # no such registered model yet
        return None
    return max(found, key=lambda v: int(v.version)) if found else None


def chain_signature(example: dict, output: dict) -> ModelSignature:
    """The outputs of an image request, the params `fill_value` and `digits` (a picture's expected length; MLflow
    drops a param the signature does not declare), and no inputs: with inputs declared, MLflow checks a request
    first and answers a wrong shape with the whole array sent; the chain checks its own (pipeline/serving/chain_input.py).
    The input example, logged beside, shows the fields; chain_takes_mask tells a client whether `mask` is one."""
    inferred = infer_signature(example, output, params={"fill_value": NO_FILL_VALUE, "digits": ANY_COUNT})
    return ModelSignature(inputs=None, outputs=inferred.outputs, params=inferred.params)


def chain_takes_mask(chain) -> bool:
    """Whether a loaded chain (mlflow.pyfunc.load_model) reads `mask`: its generator is given the hole."""
    return not is_blind(chain.unwrap_python_model().generator)


def log_chain(
    generator_path, classifier_path, train_fill: float, dataset: str, images, masks, damage_threshold: float = 0.0
):
    """Log and register the restore-and-read pyfunc built from the two .keras files; return its ModelVersion.
    The chain of a blind generator takes `image` alone (a mask sent is ignored). `damage_threshold`: the
    generator's composite at inference (evaluate.damage_threshold, models.with_damage_threshold)."""
    generator, classifier = (keras.models.load_model(p) for p in (generator_path, classifier_path))
    generator = with_damage_threshold(generator, damage_threshold)
    example = {"image": images} if is_blind(generator) else {"image": images, "mask": masks}
    output = restore_and_read(generator, classifier, train_fill, images, example.get("mask"))
    name = model_name("", dataset)
    info = mlflow.pyfunc.log_model(
        name="restore_and_read",
        python_model=RestoreAndRead(),
        artifacts={"generator": str(generator_path), "classifier": str(classifier_path)},
        model_config={"train_fill": train_fill, "damage_threshold": damage_threshold},
        code_paths=[str(Path(__file__).parents[1])],  # the whole pipeline package
        signature=chain_signature(example, output),
        input_example=example,
        pip_requirements=pip_requirements("opencv-python-headless", "pillow"),  # a picture's decoding and framing
        registered_model_name=name,
    )
    return MlflowClient().get_model_version(name, info.registered_model_version)


def comparison_context(params: Params) -> str:
    """What a recovered fraction was measured on: the dataset, its test images and the damage drawn in them."""
    return json.dumps(
        {"dataset": params.data.dataset, "max_test": params.data.max_test, "mask": dataclasses.asdict(params.mask)},
        separators=(",", ":"),
        sort_keys=True,
    )


def promote_if_better(client: MlflowClient, version, recovered: float | None, context: str) -> str:
    """Tag `version` with its score and context; give it the champion alias if it beats the champion's
    score on the same context (or there is no champion). Returns a one-line account of the decision."""
    name = version.name
    client.set_model_version_tag(name, version.version, SCORE_TAG, "none" if recovered is None else repr(recovered))
    client.set_model_version_tag(name, version.version, CONTEXT_TAG, context)
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    if recovered is None:
        return f"{name} v{version.version}: no recovered fraction (the holes cost no accuracy); alias unchanged"
    if champion is not None:
        if str(champion.version) == str(version.version):
            return f"{name} v{version.version}: already the champion"
        if champion.tags.get(CONTEXT_TAG) != context:
            return (
                f"{name} v{version.version}: champion v{champion.version} was measured on other data or holes "
                f"({champion.tags.get(CONTEXT_TAG)}); alias unchanged"
            )
        best = champion.tags.get(SCORE_TAG, "none")
        if best != "none" and recovered <= float(best):
            return f"{name} v{version.version}: recovered {recovered:.4f} <= champion v{champion.version}'s {float(best):.4f}"
    client.set_registered_model_alias(name, CHAMPION, version.version)
    was = f"v{champion.version}'s {champion.tags.get(SCORE_TAG)}" if champion else "no champion"
    return f"{name} v{version.version}: champion (recovered {recovered:.4f}; before: {was})"


def record_evaluation(params: Params, result: dict, clean, masked, holes) -> tuple[ModelVersion, list[str]]:
    """From evaluate's active run: find (or log) the generator version of data/gan, log and register the
    chain, tag both with evaluate's numbers, and move `champion` where they beat it. Returns the chain's version
    and the decisions."""
    client = MlflowClient()
    dataset = params.data.dataset
    generator = find_version(client, model_name("generator", dataset), paths.GENERATOR_MODEL)
    if generator is None:  # trained before the registry existed, or logged into another store
        generator = log_keras(
            keras.models.load_model(paths.GENERATOR_MODEL),
            paths.GENERATOR_MODEL,
            "generator",
            dataset,
            generator_input(masked[:2], holes[:2]),
        )
    classifier = find_version(client, model_name("classifier", dataset), paths.CLASSIFIER_MODEL)
    chain = log_chain(
        paths.GENERATOR_MODEL,
        paths.CLASSIFIER_MODEL,
        params.mask.fill,
        dataset,
        np.rint((clean[:2, ..., 0] + 1.0) * 127.5).astype(np.uint8),
        holes[:2].astype(np.uint8),
        params.evaluate.damage_threshold,
    )
    tags = {
        "evaluate_run_id": mlflow.active_run().info.run_id,
        "accuracy_restored": repr(result["accuracy"]["restored"]),
        "generator_version": generator.version,
        "classifier_version": classifier.version if classifier else "unregistered",
    }
    for version in (generator, chain):
        for key, value in tags.items():
            client.set_model_version_tag(version.name, version.version, key, value)
    context = comparison_context(params)
    return chain, [promote_if_better(client, v, result["recovered_fraction"], context) for v in (generator, chain)]
