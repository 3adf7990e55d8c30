"""The MLflow UI in a real browser: headless Chromium, driven by Selenium through the system chromedriver,
against a real `mlflow server` holding a tiny pipeline's two configurations (mask 8 and mask 6).

Screenshots of every page land in test-artifacts/mlflow-ui/ (git-ignored), also when a check fails.
With DIGIT_RESTORE_UI_REPO=<repository> the server serves that repository's own store (mlflow.db,
mlartifacts/) instead; docs/experiments.md says how to make the compare-view picture that way from a small real run.
Skipped where chromium or chromedriver is missing, unless DIGIT_RESTORE_REQUIRE_BROWSER=1 (CI sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from tracking_server import mlflow_server

from pipeline.common.tracking import KEY_TAG

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MISSING = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if path is None]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING) and os.environ.get("DIGIT_RESTORE_REQUIRE_BROWSER") != "1",
        reason=f"no {' and no '.join(MISSING)} on PATH (Debian: apt-get install chromium chromium-driver)",
    ),
    # store() asks for team_repo only at run time, which conftest's grouping cannot see: on team_repo's worker.
    pytest.mark.xdist_group("team_repo"),
]

SCREENSHOTS = ROOT / "test-artifacts" / "mlflow-ui"
WAIT_S = 90  # the UI's JavaScript bundle is large; a loaded 2-core machine needs a while
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1400,1000",
]
ML_VIEW = "workflowType=machine_learning"  # MLflow 3.17 opens the GenAI view otherwise
CLOSE_ASSISTANT = "button[data-component-id='mlflow.assistant.chat_panel.close']"


@dataclass(frozen=True)
class Store:
    """The server under test and the two parent runs (configurations) the pages must show."""

    url: str
    client: MlflowClient
    experiment_id: str
    parents: list[Run]  # one per configuration, largest mask first

    def children(self, parent: Run) -> dict[str, Run]:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        return {run.data.tags["dvc_stage"]: run for run in runs}

    def page(self, route: str) -> str:
        return f"{self.url}/#/{route}{'&' if '?' in route else '?'}{ML_VIEW}"


def _store(url: str) -> Store:
    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("digit-restore")
    assert experiment is not None, f"no experiment 'digit-restore' on {url}"
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KEY_TAG}` != ''")
    parents.sort(key=lambda run: -int(run.data.params["mask.families.strokes.width"]))
    assert len(parents) == 2, f"expected two configurations, found {[run.info.run_name for run in parents]}"
    assert (
        parents[0].data.params["mask.families.strokes.width"] != parents[1].data.params["mask.families.strokes.width"]
    )
    return Store(url, client, experiment.experiment_id, parents)


@pytest.fixture(scope="module")
def store(request, tmp_path_factory):
    repo = os.environ.get("DIGIT_RESTORE_UI_REPO")
    if not repo:
        yield _store(request.getfixturevalue("team_repo").tracking_uri)
        return
    repo = Path(repo).resolve()
    log = tmp_path_factory.mktemp("ui-server") / "server.log"
    with mlflow_server(f"sqlite:///{repo / 'mlflow.db'}", repo / "mlartifacts", log) as url:
        yield _store(url)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if MISSING:
        pytest.fail(f"DIGIT_RESTORE_REQUIRE_BROWSER=1 but {', '.join(MISSING)} not found on PATH")
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    print(f"screenshots: {SCREENSHOTS}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(driver, url: str, screenshot: str, ready):
    """Load `url`, wait until `ready(driver)` returns something truthy and return it; screenshot either way."""
    driver.get(url)
    try:
        return WebDriverWait(driver, WAIT_S).until(ready, f"{screenshot}: {url} did not render in {WAIT_S} s")
    finally:
        hide_assistant(driver)
        driver.save_screenshot(str(SCREENSHOTS / f"{screenshot}.png"))


def hide_assistant(driver) -> None:
    """MLflow 3.17 opens its chat panel beside every page; close it so the screenshots show the page."""
    for button in driver.find_elements(By.CSS_SELECTOR, CLOSE_ASSISTANT):
        if button.is_displayed():
            button.click()


def shown(value: float) -> str:
    """A metric as the UI prints it (JavaScript's Number#toString). From 1e-4 up both languages print the
    shortest digits that round-trip, so it is Python's repr without a trailing '.0'."""
    return repr(value).removesuffix(".0")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_run_page_shows_the_accuracy_metrics(browser, store):
    parent = store.parents[0]
    keys = ["accuracy.clean", "accuracy.masked", "accuracy.restored"]

    def metric_cells(driver) -> dict[str, str] | None:
        cells = {
            key: driver.find_elements(By.XPATH, f"//div[@role='row'][.//a[normalize-space()='{key}']]//span[@title]")
            for key in keys
        }
        return {key: found[0].get_attribute("title") for key, found in cells.items()} if all(cells.values()) else None

    url = store.page(f"experiments/{store.experiment_id}/runs/{parent.info.run_id}")
    values = open_page(browser, url, "run_overview", metric_cells)
    assert values == {key: shown(parent.data.metrics[key]) for key in keys}
    assert parent.info.run_name in browser.find_element(By.TAG_NAME, "h2").text


def test_run_page_charts_the_gan_losses(browser, store):
    gan = store.children(store.parents[0])["train_gan"]
    logged = {}
    for key in ("d_loss", "g_loss"):
        history = store.client.get_metric_history(gan.info.run_id, key)
        logged[key] = [[m.step for m in history], [m.value for m in history]]
    assert len(logged["d_loss"][0]) >= 2

    def charted(driver) -> dict[str, list] | None:
        """Each loss card's drawn line and the (step, value) series Plotly drew it from."""
        series = {}
        for key in logged:
            plots = driver.find_elements(
                By.XPATH,
                f"//*[@data-testid='experiment-view-compare-runs-card'][.//h4[@title='{key}']]"
                "//*[contains(@class, 'js-plotly-plot')][.//*[contains(@class, 'js-line')]]",
            )
            if not plots:
                return None
            series[key] = driver.execute_script("return arguments[0].data.map(t => [t.x, t.y])[0]", plots[0])
        return series

    url = store.page(f"experiments/{store.experiment_id}/runs/{gan.info.run_id}/model-metrics")
    assert open_page(browser, url, "run_loss_charts", charted) == logged


def test_artifacts_page_lists_the_sample_grid(browser, store, tmp_path):
    gan = store.children(store.parents[0])["train_gan"]
    grids = sorted(a.path for a in store.client.list_artifacts(gan.info.run_id, "samples"))
    assert grids and all(path.endswith(".png") for path in grids)
    last = grids[-1]
    expected_size = png_size(Path(store.client.download_artifacts(gan.info.run_id, last, str(tmp_path))).read_bytes())

    def tree_item(name: str):
        node = f"[data-testid='artifact-tree-node'][artifact-name='{name}']"
        return lambda driver: next((e for e in driver.find_elements(By.CSS_SELECTOR, node) if e.is_displayed()), None)

    url = store.page(f"experiments/{store.experiment_id}/runs/{gan.info.run_id}/artifacts")
    open_page(browser, url, "artifacts_tree", tree_item("samples")).click()
    WebDriverWait(browser, WAIT_S).until(tree_item(Path(last).name)).click()

    def loaded_preview(driver) -> WebElement | None:
        for image in driver.find_elements(By.CSS_SELECTOR, "img[src^='blob:']"):
            if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image):
                return image
        return None

    try:
        image = WebDriverWait(browser, WAIT_S).until(loaded_preview, f"{last} was not previewed")
    finally:
        browser.save_screenshot(str(SCREENSHOTS / "artifacts_sample_grid.png"))
    size = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image)
    assert tuple(size) == expected_size
    listed = browser.find_element(By.TAG_NAME, "body").text
    assert "losses.png" in listed and last in listed  # the preview's header names the file's path


def test_runs_list_shows_both_configurations(browser, store):
    names = [run.info.run_name for run in store.parents]

    def listed(driver) -> bool:
        return all(driver.find_elements(By.XPATH, f"//a[normalize-space()='{name}']") for name in names)

    assert open_page(browser, store.page(f"experiments/{store.experiment_id}/runs"), "runs_list", listed)


def test_compare_view_shows_both_runs(browser, store):
    ids = [run.info.run_id for run in store.parents]
    url = store.page(f"compare-runs?runs={json.dumps(ids)}&experiments={json.dumps([store.experiment_id])}")

    def row(driver, header: str) -> list[str] | None:
        cells = driver.find_elements(By.XPATH, f"//tr[th[1][normalize-space()='{header}']]/*[position() > 1]")
        return [cell.text for cell in cells] if len(cells) == len(ids) else None

    assert open_page(browser, url, "compare_runs", lambda driver: row(driver, "mask.families.strokes.width")) == [
        run.data.params["mask.families.strokes.width"] for run in store.parents
    ]
    assert row(browser, "Run ID:") == ids
    assert row(browser, "Run Name:") == [run.info.run_name for run in store.parents]
    assert "Comparing 2 Runs from 1 Experiment" in browser.find_element(By.TAG_NAME, "h2").text

    # As a user would: plot restored accuracy against stroke width, both runs on the parallel coordinates.
    plot_metric(browser, "accuracy.restored")
    restored = [run.data.metrics["accuracy.restored"] for run in store.parents]
    expected = {"mask.families.strokes.width", "accuracy.restored", f"{max(restored):.5f}", f"{min(restored):.5f}"}

    def axis_labels(driver) -> set[str] | None:
        labels = {label.text for label in driver.find_elements(By.CSS_SELECTOR, ".parcoords text")}
        return labels if expected <= labels else None

    try:
        WebDriverWait(browser, WAIT_S).until(axis_labels, f"the plot did not show {sorted(expected)}")
    finally:
        browser.save_screenshot(str(SCREENSHOTS / "compare_runs_accuracy.png"))


def plot_metric(driver, name: str) -> None:
    """Replace the metrics the compare view preselects for its parallel coordinates plot by `name`."""
    select = driver.find_element(
        By.XPATH, "//div[normalize-space()='Metrics:']/following-sibling::div[contains(@class, 'select-multiple')][1]"
    )
    remove = ".du-bois-light-select-selection-item-remove"
    while chosen := select.find_elements(By.CSS_SELECTOR, remove):
        chosen[0].click()
    select.click()
    select.find_element(By.TAG_NAME, "input").send_keys(name, Keys.ENTER, Keys.ESCAPE)
    driver.execute_script("document.activeElement.blur()")  # no text cursor in the screenshot
