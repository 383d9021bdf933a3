"""The deployments: what the UI form is made of, the schedule, prefect.yaml, bad settings."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from prefect.flows import load_flow_from_entrypoint

from flows.deploy import ON_DEMAND, SCHEDULED, build_deployments
from hyperlocal.briefs.sets import load_brief_set
from hyperlocal.errors import AssetError
from hyperlocal.models import Brief
from hyperlocal.settings import load_settings
from tests.conftest import PROJECT_ROOT
from tests.flyer_command import run_flyer

EXAMPLE_BRIEFS = PROJECT_ROOT / "examples" / "briefs"


def test_the_on_demand_form_is_the_brief_and_the_run_options() -> None:
    on_demand, _ = build_deployments(load_settings())
    assert on_demand.name == ON_DEMAND
    assert on_demand.enforce_parameter_schema
    schema = on_demand._parameter_openapi_schema.model_dump()
    properties = schema["properties"]
    assert {"brief", "profile", "variants", "formats", "print_ready"} <= set(properties)
    assert schema["required"] == ["brief"]
    brief = schema["definitions"]["Brief"]
    assert brief["properties"]["business"]["description"] == "Business or organiser name."
    # Choices become dropdowns: the schema lists them.
    tone = schema["definitions"]["Brief"]["properties"]["tone"]
    assert "enum" in str(tone) or "$ref" in str(tone)


def test_the_scheduled_deployment_follows_the_schedule_settings(tmp_path: Path) -> None:
    settings = load_settings(
        schedule__cron="30 8 * * 5", schedule__timezone="Europe/Paris", schedule__briefs=tmp_path
    )
    _, scheduled = build_deployments(settings)
    assert scheduled.name == SCHEDULED
    schedule = scheduled.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("30 8 * * 5", "Europe/Paris")
    assert scheduled.parameters == {"source": str(tmp_path.resolve())}


def test_a_bad_schedule_setting_is_one_line() -> None:
    from hyperlocal.errors import SettingsError

    with pytest.raises(SettingsError, match="HYPERLOCAL_SCHEDULE__CRON"):
        load_settings(schedule__cron="every monday")


def test_prefect_yaml_names_flows_that_exist_on_every_work_pool() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    deployments = config["deployments"]
    assert {d["work_pool"]["name"] for d in deployments} == {
        "hyperlocal-process",
        "hyperlocal-docker",
        "hyperlocal-k8s",
    }
    names = {d["name"] for d in deployments}
    assert {ON_DEMAND, SCHEDULED} <= names
    for entrypoint in {d["entrypoint"] for d in deployments}:
        # By module path: a flow loaded from its file lives in a module named after the
        # file ("flyer"), which model workers and Dask workers cannot import.
        assert ".py:" not in entrypoint
        loaded = load_flow_from_entrypoint(entrypoint)
        assert loaded.name in ("flyer", "flyer-batch")
        assert loaded.fn.__module__.startswith("flows.")
    for deployment in deployments:
        for schedule in deployment.get("schedules", []):
            assert len(schedule["cron"].split()) == 5


def test_deploy_with_settings_that_cannot_work_exits_2_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HYPERLOCAL_IMAGE__KIND": "diffusers"}
    result = subprocess.run(
        [sys.executable, "-m", "flows.deploy"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "HYPERLOCAL_IMAGE__MODEL" in lines[0]


# --- What a run may read: the form cannot widen the allowed folders ----------------------


def _brief_with_logo(logo: str) -> Brief:
    return Brief.model_validate(
        {
            "business": "Ada's Bikes",
            "event": "Free bike check",
            "place": "Canal Yard",
            "brand": {"logo": logo},
        }
    )


def _secret_logo(tmp_path: Path) -> Path:
    secret = tmp_path / "private" / "secret.png"
    secret.parent.mkdir()
    Image.new("RGB", (8, 8), "red").save(secret)
    return secret


def test_a_form_run_cannot_read_a_logo_outside_the_allowed_folders_through_assets_from(
    prefect_env: str, tmp_path: Path
) -> None:
    from flows.flyer import flyer

    secret = _secret_logo(tmp_path)
    brief = _brief_with_logo(str(secret.relative_to("/")))
    with pytest.raises(AssetError) as caught:
        flyer(brief=brief, variants=1, formats=["square"], assets_from="/")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("assets_from: / is outside the allowed asset folders")
    assert "HYPERLOCAL_ASSET_DIRS" in message


def test_a_form_run_cannot_name_an_absolute_logo_outside_the_allowed_folders(
    prefect_env: str, tmp_path: Path
) -> None:
    from flows.flyer import flyer

    secret = _secret_logo(tmp_path)
    with pytest.raises(AssetError, match=r"brand\.logo: .* is outside the allowed folders"):
        flyer(brief=_brief_with_logo(str(secret)), variants=1, formats=["square"])


def test_the_command_line_reads_a_logo_next_to_a_brief_outside_the_allowed_folders(
    prefect_env: str, isolated_env: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "my-briefs"
    folder.mkdir()
    shutil.copy(EXAMPLE_BRIEFS / "bakery.toml", folder / "bakery.toml")
    shutil.copy(EXAMPLE_BRIEFS / "rosies-logo.png", folder / "rosies-logo.png")
    result = run_flyer(
        "--brief", str(folder / "bakery.toml"), "--variants", "1", "--format", "square", env={}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = (isolated_env / "output" / "flyer_runs").iterdir()
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["brief"]["brand"]["logo"] == str((folder / "rosies-logo.png").resolve())


# --- The form's run options: descriptions and run names -----------------------------------


def test_every_run_option_of_the_form_has_a_description() -> None:
    on_demand, scheduled = build_deployments(load_settings())
    for deployment in (on_demand, scheduled):
        properties = deployment._parameter_openapi_schema.model_dump()["properties"]
        missing = [name for name, field in properties.items() if not field.get("description")]
        assert missing == [], f"{deployment.name}: no description for {missing}"


def _run_name(state: object) -> str:
    from prefect.client.orchestration import get_client

    flow_run_id = state.state_details.flow_run_id  # type: ignore[attr-defined]
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).name


def test_runs_are_named_after_the_business_and_the_event(
    prefect_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.batch import batch

    monkeypatch.setenv("HYPERLOCAL_SCHEDULE__BRIEFS", str(tmp_path))
    from flows.flyer import flyer

    # Runs that stop at once (a refused logo, an empty folder): the name comes first.
    brief = _brief_with_logo(str(_secret_logo(tmp_path)))
    state = flyer(brief=brief, variants=1, formats=["square"], return_state=True)
    assert state.is_failed()
    assert _run_name(state) == "ada-s-bikes-free-bike-check"
    (tmp_path / "shop briefs").mkdir()
    state = batch(source=str(tmp_path / "shop briefs"), return_state=True)
    assert state.is_failed()
    assert _run_name(state) == "batch-shop-briefs"


# --- prefect.yaml deploys cleanly: no schedule prompt, a briefs folder that exists -------


def _prefect_yaml_deployments() -> list[dict[str, Any]]:
    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    return list(config["deployments"])


def test_every_on_demand_deployment_says_it_has_no_schedule() -> None:
    # Without the key, an interactive `prefect deploy` offers a schedule (default: yes,
    # every hour): runs with no brief. Prefect skips the question only for a given list.
    on_demand = [d for d in _prefect_yaml_deployments() if d["entrypoint"].endswith(":flyer")]
    assert {d["name"] for d in on_demand} >= {ON_DEMAND}
    for deployment in on_demand:
        assert deployment.get("schedules", "missing") == [], deployment["name"]


def test_the_scheduled_deployment_makes_the_briefs_shipped_in_the_checkout() -> None:
    (weekly,) = [d for d in _prefect_yaml_deployments() if d["name"] == SCHEDULED]
    assert weekly["schedules"]
    # Process workers run in the checkout (HYPERLOCAL_HOME): the folder is relative to it.
    folder = PROJECT_ROOT / weekly["parameters"]["source"]
    brief_set = load_brief_set(folder, load_settings().asset_dirs)
    assert brief_set.problems == []
    assert len(brief_set.items) >= 6
    assert all(item.brief.brand.logo is not None for item in brief_set.items)


@pytest.mark.slow
def test_prefect_deploy_asks_nothing_and_adds_no_schedule_to_the_on_demand_deployment(
    prefect_env: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    prefect = Path(sys.executable).parent / "prefect"
    # Prompts on (as in a terminal) with nothing to read: any question fails the deploy.
    env = {**os.environ, "HYPERLOCAL_HOME": str(PROJECT_ROOT), "PREFECT_CLI_PROMPT": "true"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(prefect), *argv],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    pool = "hyperlocal-process"
    created = run("work-pool", "create", pool, "--type", "process", "--overwrite")
    assert created.returncode == 0, created.stdout + created.stderr
    try:
        deployed = run("deploy", "-n", ON_DEMAND, "-n", SCHEDULED)
        assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
        with get_client(sync_client=True) as client:
            on_demand = client.read_deployment_by_name(f"flyer/{ON_DEMAND}")
            scheduled = client.read_deployment_by_name(f"flyer-batch/{SCHEDULED}")
        assert on_demand.schedules == []
        (weekly,) = scheduled.schedules
        assert weekly.schedule.cron == "0 9 * * 1"  # type: ignore[union-attr]
        assert scheduled.parameters == {"source": "briefs"}
    finally:
        # The session's server is shared: leave no deployment or pool behind.
        with get_client(sync_client=True) as client:
            for name in (f"flyer/{ON_DEMAND}", f"flyer-batch/{SCHEDULED}"):
                with contextlib.suppress(Exception):
                    client.delete_deployment(client.read_deployment_by_name(name).id)
            with contextlib.suppress(Exception):
                client.delete_work_pool(pool)
