"""The deployments: what the UI form is made of, the schedule, prefect.yaml, bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

from flows.deploy import ON_DEMAND, SCHEDULED, build_deployments
from hyperlocal.settings import load_settings
from tests.conftest import PROJECT_ROOT


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
        loaded = load_flow_from_entrypoint(str(PROJECT_ROOT / entrypoint))
        assert loaded.name in ("flyer", "flyer-batch")
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
