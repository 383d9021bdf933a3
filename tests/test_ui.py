"""End to end in a real browser: the Prefect UI's form starts a flyer run served by flows.deploy.

Starts ``prefect server start`` (with its UI) on a free loopback port and
``python -m flows.deploy`` against it, fills the deployment's run form in
headless Chromium (Debian's ``chromium``, driven by Playwright), waits for the
run to complete, checks its artifacts and files, and saves screenshots under
``output/ui-test/``. A second test starts the scheduled deployment through the
API. Both processes are stopped at the end (the deploy process by SIGTERM).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROJECT_ROOT
from tests.servers import prefect_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = PROJECT_ROOT / "output" / "ui-test"
BRIEF = """\
business = "Canal Yard Bikes"
event = "Puncture repair evening"
place = "Unit 4, Canal Yard"
date = "Thursday 7 May"
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@dataclass
class Served:
    """The Prefect server and the deploy process serving the flyer deployments."""

    api: str
    ui: str
    output: Path
    deploy: subprocess.Popen[bytes]
    log: Path


def _post(api: str, path: str, body: dict[str, object]) -> list[dict[str, object]]:
    response = httpx.post(f"{api}{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def _deployment(api: str, name: str) -> dict[str, object]:
    found = _post(api, "/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
    assert found, f"no deployment {name}"
    return found[0]


def _runs_of(api: str, deployment_id: str, timeout_s: float) -> list[dict[str, object]]:
    """Return the deployment's flow runs, newest first, once there is one (or [] at timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = _post(
            api,
            "/flow_runs/filter",
            {"deployments": {"id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_DESC"},
        )
        if runs or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def _wait_for_state(api: str, run_id: str, timeout_s: float = 240) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"run still {run['state_type']}"
        time.sleep(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The server with its UI, and ``python -m flows.deploy`` serving both deployments."""
    root = tmp_path_factory.mktemp("ui")
    briefs = root / "briefs"
    briefs.mkdir()
    (briefs / "bikes.toml").write_text(BRIEF, encoding="utf-8")
    output = root / "output"
    with prefect_server(root / "prefect-home", ui=True) as api:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")},
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(root / "prefect-home"),
            "HYPERLOCAL_CONFIG": str(root / "none.toml"),
            "HYPERLOCAL_OUTPUT_DIR": str(output),
            "HYPERLOCAL_CACHE_DIR": str(root / "cache"),
            "HYPERLOCAL_SCHEDULE__BRIEFS": str(briefs),
            "HYPERLOCAL_SCHEDULE__TIMEZONE": "Europe/London",
            "HYPERLOCAL_VARIANTS": "1",
            "HYPERLOCAL_FORMATS": '["square"]',
        }
        log = root / "deploy.log"
        with log.open("wb") as sink:
            deploy = subprocess.Popen(
                [sys.executable, "-m", "flows.deploy"],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 90
                while len(_post(api, "/deployments/filter", {})) < 2:
                    assert deploy.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.5)
                yield Served(api, api.removesuffix("/api"), output, deploy, log)
            finally:
                if deploy.poll() is None:
                    deploy.send_signal(signal.SIGTERM)
                    try:
                        deploy.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        deploy.kill()
                        deploy.wait()


def _field(page: object, label: str) -> object:
    # The form's labels are not tied to their inputs: find the property by its label text.
    return page.locator(  # type: ignore[attr-defined]
        "xpath=//span[contains(@class, 'schema-form-property__label') and "
        f"normalize-space()='{label}']/ancestor::div[contains(concat(' ', "
        "normalize-space(@class), ' '), ' schema-form-property ')][1]//textarea"
    ).first


def test_the_ui_form_starts_a_flyer_run_that_completes_with_artifacts(served: Served) -> None:
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    deployment = _deployment(served.api, "make-flyer")
    schedule = _deployment(served.api, "weekly-flyers")["schedules"][0]["schedule"]  # type: ignore[index]
    assert (schedule["cron"], schedule["timezone"]) == ("0 9 * * 1", "Europe/London")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(
                f"{served.ui}/deployments/deployment/{deployment['id']}/run",
                wait_until="networkidle",
            )
            # The Brief model is the form: descriptions and the tone dropdown come from it.
            assert page.get_by_text("Business or organiser name.").is_visible()
            _field(page, "Business").fill("Canal Yard Bikes")
            _field(page, "Event").fill("Puncture repair evening")
            _field(page, "Place").fill("Unit 4, Canal Yard")
            page.screenshot(path=str(SCREENSHOTS / "form.png"), full_page=True)
            submit = page.get_by_role("button", name="Submit")
            submit.click()
            # The run the form created, read from the API: the UI's own navigation after
            # submitting took over 30 s once on a loaded CI machine.
            created = _runs_of(served.api, str(deployment["id"]), timeout_s=30)
            if not created and submit.is_visible():
                # The click did not take (the form was still settling): as a user would.
                page.screenshot(path=str(SCREENSHOTS / "not-submitted.png"), full_page=True)
                submit.click()
                created = _runs_of(served.api, str(deployment["id"]), timeout_s=60)
            assert created, "submitting the form created no flow run"
            run = _wait_for_state(served.api, str(created[0]["id"]))
            assert run["state_type"] == "COMPLETED", served.log.read_text()[-3000:]
            assert run["parameters"]["brief"]["business"] == "Canal Yard Bikes"  # type: ignore[index]

            page.goto(f"{served.ui}/runs/flow-run/{run['id']}", wait_until="networkidle")
            page.get_by_text("Artifacts", exact=True).first.click()
            key = "flyer-canal-yard-bikes-puncture-repair-evening"
            page.get_by_text(key, exact=True).first.wait_for()
            page.screenshot(path=str(SCREENSHOTS / "finished-run.png"), full_page=True)
            # The markdown artifact shows the copy and the flyer thumbnails (data URIs).
            page.get_by_text(key, exact=True).first.click()
            page.locator("img[src^='data:image/']").first.wait_for()
            assert page.get_by_text("Puncture repair evening").first.is_visible()
            page.screenshot(path=str(SCREENSHOTS / "markdown-artifact.png"), full_page=True)
        finally:
            browser.close()
    artifacts = _post(
        served.api, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}
    )
    assert {a["type"] for a in artifacts} >= {"markdown", "table", "progress"}
    folders = sorted((served.output / "flyer_runs").glob("*canal-yard-bikes*"))
    assert folders
    assert (folders[-1] / "variant_01_square.png").is_file()
    print(f"UI test: {time.monotonic() - started:.1f} s; screenshots in {SCREENSHOTS}")


def test_the_scheduled_deployment_runs_through_the_api(served: Served) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: served.api}):
        run = run_deployment("flyer-batch/weekly-flyers", timeout=240)
    assert run.state is not None
    assert run.state.is_completed(), served.log.read_text()[-3000:]
    folders = list((served.output / "flyer_runs").glob("*canal-yard-bikes*"))
    assert folders
    assert list((served.output / "batches").rglob("batch_summary.json"))


def test_sigterm_stops_the_deploy_process_cleanly(served: Served) -> None:
    served.deploy.send_signal(signal.SIGTERM)
    assert served.deploy.wait(timeout=30) == 0
