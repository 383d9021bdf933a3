"""A batch whose steps run on a local two-worker Dask cluster (prefect-dask's DaskTaskRunner)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("prefect_dask")

from flows.batch import batch
from tests.flyer_command import run_flyer

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Steps of one brief with one variant, one format and a first picture that passes QC.
STEPS_PER_BRIEF = {"write_copy", "direct_art", "fit_prompt", "generate_image", "render_flyer"}


def test_a_batch_runs_its_steps_on_a_two_worker_local_dask_cluster(
    prefect_env: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HYPERLOCAL_TASK_RUNNER", "dask")
    monkeypatch.setenv("HYPERLOCAL_DASK_WORKERS", "2")
    monkeypatch.setenv("HYPERLOCAL_VARIANTS", "1")
    monkeypatch.setenv("HYPERLOCAL_FORMATS", '["square"]')
    path = tmp_path / "briefs.json"
    path.write_text(
        json.dumps(
            [
                {"business": "Lido", "event": "Night swim", "place": "Park Road"},
                {"business": "Ada's Bikes", "event": "Free bike check", "place": "Canal Yard"},
            ]
        )
    )

    monkeypatch.setenv("HYPERLOCAL_SCHEDULE__BRIEFS", str(tmp_path))  # a batch reads there
    summary = batch(source=str(path), max_parallel=2)

    assert [r.status for r in summary.results] == ["ok", "ok"], summary.results
    for result in summary.ok:
        assert result.folder is not None
        assert (result.folder / "variant_01_square.png").is_file()
        assert (result.folder / "manifest.json").is_file()
        assert result.model_calls > 0
    # The steps ran on the Dask cluster the batch started: its scheduler's task stream
    # recorded them, each with the worker process that ran it (not this process).
    assert summary.task_runner.startswith("dask tcp://127.0.0.1:")
    assert 1 <= len(summary.dask_tasks) <= 2
    assert all(worker.startswith("tcp://127.0.0.1:") for worker in summary.dask_tasks)
    assert sum(summary.dask_tasks.values()) >= len(STEPS_PER_BRIEF) * 2

    # And Prefect saw every step of both briefs complete as task runs of the subflows.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    assert summary.flow_run_id is not None
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[summary.flow_run_id])
            )
        )
        assert len(children) == 2
        assert all(child.state is not None and child.state.is_completed() for child in children)
        for child in children:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[child.id]))
            )
            done = {run.name.rsplit("-", 1)[0] for run in runs if run.state.is_completed()}
            assert done >= STEPS_PER_BRIEF, done


def _flyer_on_dask(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the README's single-brief Dask command; return how it ended."""
    dask = {"HYPERLOCAL_TASK_RUNNER": "dask", "COLUMNS": "200", **env}
    return run_flyer("--variants", "1", "--format", "square", env=dask)


def test_one_brief_from_the_command_line_runs_on_a_local_dask_cluster(
    prefect_env: str, isolated_env: Path
) -> None:
    # The command as the README gives it: the progress display must not travel with the
    # tasks to the workers (it cannot be pickled), yet the run shows its progress.
    result = _flyer_on_dask({"HYPERLOCAL_DASK_WORKERS": "2"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Done in" in result.stdout
    (folder,) = (isolated_env / "output" / "flyer_runs").iterdir()
    assert (folder / "variant_01_square.png").is_file()


def test_one_brief_from_the_command_line_runs_on_a_dask_scheduler_address(
    prefect_env: str, isolated_env: Path
) -> None:
    from distributed import LocalCluster

    # A scheduler already running (this test's), as a team would run one for many runs.
    with LocalCluster(n_workers=1, processes=True, dashboard_address=None) as cluster:
        before = cluster.scheduler.transition_counter
        result = _flyer_on_dask({"HYPERLOCAL_DASK_ADDRESS": cluster.scheduler_address})
        transitions = cluster.scheduler.transition_counter - before
    assert result.returncode == 0, result.stdout + result.stderr
    (folder,) = (isolated_env / "output" / "flyer_runs").iterdir()
    assert (folder / "variant_01_square.png").is_file()
    # The steps went through that scheduler (each task makes several transitions).
    assert transitions >= 10
