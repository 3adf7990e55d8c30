"""`dvc repro` end to end on a tiny configuration: stages, DVC bookkeeping, metrics, MLflow contents.

The tests that only read the session's `tiny_repo` share it; each test that runs DVC again gets its own copy.
"""

from __future__ import annotations

import csv
import json
import re
import sys

import pytest
import yaml
from conftest import run, write_params
from mlflow.tracking import MlflowClient

from pipeline.scoring.damage_table import FAMILIES
from pipeline.training import precision

pytestmark = pytest.mark.slow

STAGES = ["download", "mask", "train_classifier", "train_gan", "evaluate"]


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def client_for(repo) -> MlflowClient:
    return MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")


PARENTS = "tags.`digit_restore.pipeline_key` != ''"


def runs(repo, filter_string: str = "") -> list:
    client = client_for(repo)
    experiment = client.get_experiment_by_name("digit-restore")
    assert experiment is not None, "the MLflow experiment 'digit-restore' was not created"
    return client.search_runs([experiment.experiment_id], filter_string=filter_string, max_results=1000)


def test_repro_runs_all_stages_and_locks_them(tiny_repo):
    log = (tiny_repo.parent / "first_repro.log").read_text()
    assert stages_run(log) == STAGES
    lock = yaml.safe_load((tiny_repo / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(STAGES)
    assert lock["stages"]["train_gan"]["params"]["params.yaml"]["gan"]["epochs"] == 2
    assert sorted(p.name for p in (tiny_repo / "data/raw").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert not list((tiny_repo / "data").glob("*.partial"))


def test_metrics_have_every_key_in_range(tiny_repo):
    metrics = json.loads((tiny_repo / "results/metrics.json").read_text())
    assert metrics["test_images"] == 256
    for variant in ("clean", "masked", "restored"):
        assert 0.0 <= metrics["accuracy"][variant] <= 1.0
        assert metrics["phone_number"][variant] == metrics["accuracy"][variant] ** 10
    assert metrics["phone_number"]["digits"] == 10
    acc = metrics["accuracy"]
    if acc["clean"] > acc["masked"]:
        expected = (acc["restored"] - acc["masked"]) / (acc["clean"] - acc["masked"])
        assert abs(metrics["recovered_fraction"] - expected) < 1e-12
    assert sorted(metrics["per_class"], key=int) == [str(c) for c in range(10)]
    assert all(0 <= v <= 1 for row in metrics["per_class"].values() for v in row.values())
    # A hole filled with -1 (black) differs from the digit wherever the digit had ink.
    assert 0 < metrics["hole"]["mae_masked"] <= 1 and 0 < metrics["hole"]["mae_restored"] <= 1
    assert metrics["hole"]["psnr_masked"] > 0 and metrics["hole"]["psnr_restored"] > 0
    assert set(metrics["baselines"]) == {"telea", "navier_stokes"}
    for baseline in metrics["baselines"].values():
        assert 0 <= baseline["accuracy"] <= 1 and 0 < baseline["hole_mae"] < metrics["hole"]["mae_masked"]
    assert 0 <= metrics["generator_reading_accuracy"] <= 1  # the default generator reads the digit itself
    assert metrics["restorer"] == "blind"
    assert set(metrics["second_reader"]["accuracy"]) == {"clean", "masked", "restored"}
    # The table of damage family x restorer, each read by both readers.
    assert sorted(metrics["damage"]) == sorted(FAMILIES)  # metrics.json keeps its keys sorted
    for by in metrics["damage"].values():
        assert sorted(by) == ["masked", "navier_stokes", "restored"]
        for row in by.values():
            assert set(row) == {
                "accuracy_judge",
                "accuracy_second",
                "recovered_judge",
                "recovered_second",
                "l1_damage",
                "l1_outside",
                "changed_outside",
            }
            assert all(0 <= row[f"accuracy_{r}"] <= 1 for r in ("judge", "second"))
        assert by["masked"]["l1_outside"] == by["navier_stokes"]["l1_outside"] == 0.0  # both keep the intact pixels
        assert by["masked"]["l1_damage"] > 0
    with (tiny_repo / "results/damage.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [row["family"] for row in table] == list(FAMILIES)
    assert table[0]["restored_second"] == f"{metrics['damage']['classic']['restored']['accuracy_second']:.4f}"
    assert list(table[0]) == [
        "family",
        *(f"{v}_{r}" for v in ("masked", "navier_stokes", "restored") for r in ("judge", "second")),
    ]
    for picture in ("damage.png", "damage_grid.png"):
        assert (tiny_repo / "results" / picture).read_bytes()[:4] == b"\x89PNG"
    csv_lines = (tiny_repo / "results/per_class_accuracy.csv").read_text().splitlines()
    assert csv_lines[0] == "class,clean,masked,restored" and len(csv_lines) == 11
    assert (tiny_repo / "results/restored_grid.png").read_bytes()[:4] == b"\x89PNG"
    # One reading per test image, the same readings the accuracies were computed from.
    with (tiny_repo / "results/readings.csv").open() as f:
        readings = list(csv.DictReader(f))
    assert len(readings) == 256 and list(readings[0]) == ["digit", "clean", "masked", "restored"]
    for variant in ("clean", "masked", "restored"):
        hits = sum(row["digit"] == row[variant] for row in readings)
        assert hits / 256 == metrics["accuracy"][variant]
    shown = run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], tiny_repo).stdout
    assert "accuracy" in shown and "val_accuracy" in shown


def test_mlflow_holds_parent_and_stage_runs(tiny_repo):
    parents = runs(tiny_repo, PARENTS)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.params["gan.lr_g"] == "0.0004"
    assert parent.data.params["mask.families.strokes.width"] == "3"
    assert parent.data.tags["dataset"] == "mnist"
    assert re.fullmatch(r"[0-9a-f]{40}", parent.data.tags["git_commit"])
    assert 0 <= parent.data.metrics["accuracy.restored"] <= 1
    assert (
        "recovered_fraction" in parent.data.metrics
        or parent.data.metrics["accuracy.clean"] <= parent.data.metrics["accuracy.masked"]
    )

    children = runs(tiny_repo, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_stage = {child.data.tags["dvc_stage"]: child for child in children}
    assert sorted(by_stage) == sorted(["train_classifier", "train_gan", "evaluate"])
    assert all(child.info.status == "FINISHED" for child in children)

    gan = by_stage["train_gan"]
    assert gan.data.params["gan.epochs"] == "2"
    assert gan.data.tags["gan_precision"] == precision.resolve(gan.data.params["gan.precision"])  # what auto chose here
    client = client_for(tiny_repo)
    history = client.get_metric_history(gan.info.run_id, "d_loss")
    assert [m.step for m in history] == list(range(6))  # 2 epochs x 3 iterations, step = global iteration
    artifacts = {a.path for a in client.list_artifacts(gan.info.run_id, "samples")}
    assert artifacts == {"samples/epoch_01.png", "samples/epoch_02.png"}
    top = {a.path for a in client.list_artifacts(gan.info.run_id)}
    assert {"losses.png", "losses.csv"} <= top  # the generator itself is a logged model (tests/test_registry.py)
    evaluated = {a.path for a in client.list_artifacts(by_stage["evaluate"].info.run_id)}
    assert {"restored_grid.png", "metrics.json", "damage.csv", "damage.png", "damage_grid.png"} <= evaluated
    assert "damage.classic.restored.accuracy_second" in by_stage["evaluate"].data.metrics
    assert (tiny_repo / "mlartifacts").is_dir()


def test_second_repro_runs_nothing(tiny_repo_copy):
    result = run([sys.executable, "-m", "dvc", "repro"], tiny_repo_copy)
    assert stages_run(result.stdout) == []
    assert "up to date" in result.stdout


def test_changing_a_gan_param_reruns_only_gan_and_evaluate(tiny_repo_copy):
    write_params(tiny_repo_copy, {"gan": {"lr_g": 0.0003}})
    result = run([sys.executable, "-m", "dvc", "repro"], tiny_repo_copy)
    assert stages_run(result.stdout) == ["train_gan", "evaluate"]
    parents = runs(tiny_repo_copy, f"{PARENTS} and params.`gan.lr_g` = '0.0003'")
    assert len(parents) == 1
    children = runs(tiny_repo_copy, f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert sorted(child.data.tags["dvc_stage"] for child in children) == ["evaluate", "train_gan"]


def test_dvc_exp_run_temp_lands_in_the_same_store(tiny_repo_copy):
    result = run(
        [
            sys.executable,
            "-m",
            "dvc",
            "exp",
            "run",
            "--temp",
            "-n",
            "thin-strokes",
            "-S",
            "mask.families.strokes.width=2",
        ],
        tiny_repo_copy,
    )
    assert stages_run(result.stdout) == ["mask", "train_gan", "evaluate"]  # a nested damage key reruns what it feeds
    parents = runs(tiny_repo_copy, f"{PARENTS} and tags.dvc_exp_name = 'thin-strokes'")
    assert len(parents) == 1
    assert parents[0].data.params["mask.families.strokes.width"] == "2"
    assert "accuracy.restored" in parents[0].data.metrics
    shown = run([sys.executable, "-m", "dvc", "exp", "show", "--json"], tiny_repo_copy).stdout
    assert "thin-strokes" in shown
