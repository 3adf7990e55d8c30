"""The MLflow run behind one side of a PR report: found from that side's dvc.lock, not from a name.

Results committed on a branch name no run. Each evaluate run is tagged with the md5 of every data input it read
(pipeline.common.tracking), and a dvc.lock records the md5 of every output; so the evaluate runs whose tags equal one
dvc.lock's are the runs that scored exactly that data. The latest of them leads to its parent run, which holds
the configuration's params and headline metrics. On an `http(s)://` store the report links to it; on a local
SQLite store, which a reviewer cannot open, it gives the run id.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from pipeline.common import tracking
from pipeline.common.errors import PipelineError
from pipeline.review import report


@dataclass(frozen=True)
class FoundRun:
    name: str
    run_id: str
    url: str | None  # None on a store without a web UI (SQLite)

    def markdown(self) -> str:
        shown = f"`{self.name}` (run id `{self.run_id}`)"
        return f"[{shown}]({self.url})" if self.url else shown


def evaluate_inputs(lock: dict) -> dict[str, str]:
    """The `data_md5.<path>` tags an evaluate run of this dvc.lock carries."""
    stages = lock.get("stages", {})
    deps = [dep["path"] for dep in stages.get("evaluate", {}).get("deps", [])]
    return tracking.locked_hashes(deps, stages)


def parent_of_evaluation(lock: dict, experiment: str) -> FoundRun | str:
    """The parent run of the latest evaluate run of `lock`'s data in the tracking store, or why there is none."""
    inputs = evaluate_inputs(lock)
    if not inputs:
        return "its dvc.lock has no evaluate stage with data inputs"
    try:
        uri = report.store_uri()
    except PipelineError as exc:
        return str(exc)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return f"the store has no experiment {experiment!r}"
    query = " and ".join(["tags.dvc_stage = 'evaluate'", *(f"tags.`{key}` = '{md5}'" for key, md5 in inputs.items())])
    runs = client.search_runs([found.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return "no evaluate run in the store read this dvc.lock's data"
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    url = None
    if uri.startswith(("http://", "https://")):
        url = f"{uri.rstrip('/')}/#/experiments/{found.experiment_id}/runs/{parent.info.run_id}"
    return FoundRun(parent.info.run_name, parent.info.run_id, url)
