"""Registered models: what the stages log, and when evaluate moves the `champion` alias."""

from __future__ import annotations

import json

import mlflow.pyfunc
import pytest
from mlflow.models import get_model_info
from mlflow.tracking import MlflowClient

from pipeline.serving import registry

NAMES = ("digit-restore-generator-mnist", "digit-restore-classifier-mnist", "digit-restore-mnist")


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite registry holding one registered model, and a function that adds a version."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    client.create_registered_model("m")
    (tmp_path / "model").mkdir()
    return client, lambda: client.create_model_version("m", (tmp_path / "model").as_uri())


def champion(client) -> str:
    return str(client.get_model_version_by_alias("m", registry.CHAMPION).version)


def test_champion_moves_only_to_a_better_score_on_the_same_data(store):
    client, new_version = store
    same, other = '{"mask":[8]}', '{"mask":[12]}'
    registry.promote_if_better(client, new_version(), 0.50, same)
    assert champion(client) == "1"  # the first one, for want of any other
    registry.promote_if_better(client, new_version(), 0.40, same)
    registry.promote_if_better(client, new_version(), 0.50, same)  # a tie does not take it
    assert champion(client) == "1"
    registry.promote_if_better(client, new_version(), 0.99, other)  # not comparable
    registry.promote_if_better(client, new_version(), None, same)  # the holes cost nothing: no score
    assert champion(client) == "1"
    decision = registry.promote_if_better(client, new_version(), 0.60, same)
    assert champion(client) == "6" and "champion (recovered 0.6000; before: v1's 0.5)" in decision
    assert client.get_model_version("m", "4").tags == {"recovered_fraction": "0.99", "comparison_context": other}


@pytest.fixture
def tiny_store(tiny_repo, monkeypatch) -> MlflowClient:
    """The tiny run's store, also for MLflow's functions that take a models:/ URI."""
    uri = f"sqlite:///{tiny_repo / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return MlflowClient(uri)


@pytest.mark.slow
def test_the_pipeline_registers_its_models(tiny_repo, tiny_store):
    client = tiny_store
    generator, classifier, chain = (client.search_model_versions(f"name = '{n}'") for n in NAMES)
    assert generator and classifier and chain
    data_file = registry.file_sha256(tiny_repo / "data/gan/generator.keras")
    assert data_file in {v.tags[registry.FILE_TAG] for v in generator}  # evaluate finds data/gan's version

    for name, shapes in {NAMES[0]: ([-1, 28, 28, 2], [-1, 28, 28, 1]), NAMES[1]: ([-1, 28, 28, 1], [-1, 10])}.items():
        info = get_model_info(f"models:/{name}/1")
        signature = info.signature.to_dict()
        assert [json.loads(signature[k])[0]["tensor-spec"]["shape"] for k in ("inputs", "outputs")] == list(shapes)
        assert info.saved_input_example_info is not None and info.flavors["keras"]
    chain_info = get_model_info(f"models:/{NAMES[2]}/1")
    # The default generator is blind: its chain takes the image alone. The chain checks its input itself
    # (pipeline/serving/chain_input.py), so its signature declares the outputs and the params, no inputs.
    assert chain_info.signature.inputs is None and [p.name for p in chain_info.signature.params.params] == [
        "fill_value",
        "digits",
    ]
    assert registry.chain_takes_mask(mlflow.pyfunc.load_model(f"models:/{NAMES[2]}/1")) is False
    assert {s["name"] for s in json.loads(chain_info.signature.to_dict()["outputs"])} == {
        "restored",
        "damage",
        "digit",
        "confidence",
        "probabilities",
    }

    classifier_model = client.get_logged_model(get_model_info(f"models:/{NAMES[1]}/1").model_id)
    assert {"val_accuracy", "val_loss"} <= {m.key for m in classifier_model.metrics}  # the run's metrics attached
    chain_model = client.get_logged_model(chain_info.model_id)  # evaluate's, linked as they are logged
    chain_metrics = {m.key: m.value for m in chain_model.metrics}
    assert (
        chain_metrics["accuracy.restored"]
        == json.loads((tiny_repo / "results/metrics.json").read_text())["accuracy"]["restored"]
    )
    assert len(chain_metrics) == len(client.get_run(chain_info.run_id).data.metrics)
    assert classifier[0].run_id and client.get_run(classifier[0].run_id).data.tags["dvc_stage"] == "train_classifier"


@pytest.mark.slow
def test_each_champion_has_the_best_score_of_its_data(tiny_store):
    """Whatever runs came before (the e2e tests add some), a champion beats or ties every version
    scored on its own data and holes, and is the first to reach that score."""
    client = tiny_store
    for name in (NAMES[0], NAMES[2]):
        best = client.get_model_version_by_alias(name, registry.CHAMPION)
        context = best.tags[registry.CONTEXT_TAG]
        rivals = [
            v
            for v in client.search_model_versions(f"name = '{name}'")
            if v.tags.get(registry.CONTEXT_TAG) == context and v.tags[registry.SCORE_TAG] != "none"
        ]
        top = max(float(v.tags[registry.SCORE_TAG]) for v in rivals)
        assert float(best.tags[registry.SCORE_TAG]) == top
        assert int(best.version) == min(int(v.version) for v in rivals if float(v.tags[registry.SCORE_TAG]) == top)
