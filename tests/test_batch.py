"""Batches: sets of briefs validated first, run as subflows, summarised, cached on re-runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.batch import ARTIFACT_KEY, SUMMARY_FILE, BatchSummary, batch
from hyperlocal.briefs.sets import load_brief_set
from hyperlocal.errors import BriefError
from hyperlocal.models import RunManifest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT_ROOT / "examples"

GOOD_TOML = 'business = "Ada\'s Bikes"\nevent = "Free bike check"\nplace = "Canal Yard"\n'
BAD_TOML = 'business = "Cafe"\nevent = "Open mic"\n'  # no place
CSV_TEXT = (
    "business,event,place,date,brand.colors,brand.heading_font\n"
    "Ada's Bikes,Free bike check,Canal Yard,Sunday 3 May,#1F3A5F #F2A541,\n"
    "Cafe Nine,Open mic,,,,\n"
    'Lido,Night swim,Park Road,,"#0A2540, #FFFFFF",\n'
)


@pytest.fixture(autouse=True)
def briefs_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test's briefs live in its own folder, made the machine's briefs folder: a
    batch run reads briefs only from there, the asset folders, or a caller's own path."""
    monkeypatch.setenv("HYPERLOCAL_SCHEDULE__BRIEFS", str(tmp_path))


@pytest.fixture
def fast_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """One variant, one format: a batch test checks the batch, not the layouts."""
    monkeypatch.setenv("HYPERLOCAL_VARIANTS", "1")
    monkeypatch.setenv("HYPERLOCAL_FORMATS", '["square"]')


def _brief_folder(root: Path) -> Path:
    folder = root / "briefs"
    folder.mkdir()
    shutil.copy(EXAMPLES / "briefs" / "bakery.toml", folder / "bakery.toml")
    shutil.copy(EXAMPLES / "briefs" / "rosies-logo.png", folder / "rosies-logo.png")
    (folder / "bikes.toml").write_text(GOOD_TOML)
    (folder / "broken.toml").write_text(BAD_TOML)
    (folder / "notes.txt").write_text("not a brief")
    return folder


def _run_folders(output: Path) -> list[Path]:
    runs = output / "flyer_runs"
    return sorted(runs.iterdir()) if runs.exists() else []


# --- Loading sets (no Prefect) ------------------------------------------------------------


def test_a_folder_loads_every_brief_file_sorted_and_names_the_bad_one(tmp_path: Path) -> None:
    folder = _brief_folder(tmp_path)
    brief_set = load_brief_set(folder)
    assert [Path(i.source).name for i in brief_set.items] == ["bakery.toml", "bikes.toml"]
    # The logo resolves next to its brief file, wherever the folder is.
    logo = brief_set.items[0].brief.brand.logo
    assert logo == (folder / "rosies-logo.png").resolve()
    (problem,) = brief_set.problems
    assert problem.source == str(folder / "broken.toml")
    assert problem.message == f"{folder / 'broken.toml'}: place is required"
    assert "\n" not in problem.message


def test_a_csv_row_is_a_brief_and_a_bad_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "briefs.csv"
    path.write_text(CSV_TEXT)
    brief_set = load_brief_set(path)
    assert [i.brief.business for i in brief_set.items] == ["Ada's Bikes", "Lido"]
    assert brief_set.items[0].brief.brand.colors == ["#1F3A5F", "#F2A541"]
    assert brief_set.items[1].brief.brand.colors == ["#0A2540", "#FFFFFF"]
    assert brief_set.items[0].brief.brand.heading_font is None  # empty cell: unset
    assert brief_set.items[0].brief.price is None
    (problem,) = brief_set.problems
    assert problem.message == f"{path} row 2 (line 3): place is required"


def test_a_csv_with_an_unknown_column_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "briefs.csv"
    path.write_text("business,event,place,colour\nA,B,C,red\n")
    with pytest.raises(BriefError, match="unknown column 'colour'") as caught:
        load_brief_set(path)
    assert "\n" not in str(caught.value)


def test_a_json_list_names_bad_items(tmp_path: Path) -> None:
    path = tmp_path / "briefs.json"
    good = {"business": "Lido", "event": "Night swim", "place": "Park Road"}
    path.write_text(json.dumps([good, {"business": "X", "event": "Y", "place": "Z", "tone": 1}, 3]))
    brief_set = load_brief_set(path)
    assert [i.source for i in brief_set.items] == [f"{path} item 1"]
    assert [p.source for p in brief_set.problems] == [f"{path} item 2", f"{path} item 3"]
    assert brief_set.problems[0].message.startswith(f"{path} item 2: tone:")
    assert "must be an object" in brief_set.problems[1].message


def test_an_identical_brief_is_left_out_as_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "briefs.json"
    good = {"business": "Lido", "event": "Night swim", "place": "Park Road"}
    path.write_text(json.dumps([good, good]))
    brief_set = load_brief_set(path)
    assert len(brief_set.items) == 1
    assert (
        brief_set.problems[0].message == f"{path} item 2: the same brief as {path} item 1; left out"
    )


@pytest.mark.parametrize("name", ["missing", "briefs.xlsx", "empty"])
def test_an_unreadable_set_is_one_brief_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "empty":
        path.mkdir()
    elif name.endswith(".xlsx"):
        path.write_bytes(b"PK")
    with pytest.raises(BriefError) as caught:
        load_brief_set(path)
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


# --- The flow -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_batch_runs_the_good_briefs_summarises_and_a_rerun_hits_the_cache(
    prefect_env: str, isolated_env: Path, fast_settings: None, tmp_path: Path
) -> None:
    folder = _brief_folder(tmp_path)
    summary = batch(source=str(folder), max_parallel=2)

    assert [(Path(r.source).name, r.status) for r in summary.results] == [
        ("bakery.toml", "ok"),
        ("bikes.toml", "ok"),
        ("broken.toml", "invalid"),
    ]
    assert summary.invalid[0].error == f"{folder / 'broken.toml'}: place is required"
    assert summary.task_runner == "threads"
    runs = _run_folders(isolated_env / "output")
    assert len(runs) == 2
    assert {r.folder for r in summary.ok} == set(runs)
    for result in summary.ok:
        assert result.folder is not None
        assert (result.folder / "variant_01_square.png").is_file()
        assert result.model_calls > 0

    # The summary file is in its own batch folder and reads back as the returned summary.
    summary_file = summary.folder / SUMMARY_FILE
    assert summary.folder.parent == isolated_env / "output" / "batches"
    assert BatchSummary.model_validate_json(summary_file.read_text()) == summary

    # The table artifact is on the server, one row per brief.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    assert summary.flow_run_id is not None
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ARTIFACT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[summary.flow_run_id]),
            )
        )
    assert artifact.type == "table"
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [row["status"] for row in table] == ["ok", "ok", "invalid"]
    assert set(table[0]) == {
        "source",
        "business",
        "status",
        "run folder",
        "model calls",
        "cached steps",
        "seconds",
    }

    # The same set again: every step of every brief comes from the cache.
    again = batch(source=str(folder), max_parallel=2)
    assert [r.status for r in again.results] == ["ok", "ok", "invalid"]
    assert again.folder != summary.folder
    for result in again.ok:
        assert result.model_calls == 0
        assert result.computed_steps == 0
        assert result.cached_steps > 0
        manifest = RunManifest.model_validate_json((result.folder / "manifest.json").read_text())
        assert sum(manifest.model_calls.values()) == 0


def test_a_run_from_the_ui_cannot_read_briefs_outside_the_briefs_and_asset_folders(
    prefect_env: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    (elsewhere / "cafe.toml").write_text('business = "Cafe"\nevent = "Open mic"\nplace = "Here"\n')
    with pytest.raises(BriefError, match="is outside the folders a batch run may read"):
        batch(source=str(elsewhere))
    # The command line names a path on its own machine: that path may be read.
    from flows.batch import check_source
    from flows.flyer import assets_allowed_from
    from hyperlocal.settings import load_settings

    with assets_allowed_from(elsewhere):
        check_source(elsewhere / "cafe.toml", load_settings())


@pytest.mark.slow
def test_strict_fails_the_flow_before_any_work(
    prefect_env: str, isolated_env: Path, tmp_path: Path
) -> None:
    folder = _brief_folder(tmp_path)
    with pytest.raises(BriefError, match="1 of 3 briefs are invalid") as caught:
        batch(source=str(folder), strict=True)
    assert "broken.toml" in str(caught.value)
    assert not (isolated_env / "output").exists()


@pytest.mark.slow
def test_one_brief_failing_does_not_stop_the_others(
    prefect_env: str, isolated_env: Path, fast_settings: None, tmp_path: Path
) -> None:
    path = tmp_path / "briefs.json"
    good = {"business": "Lido", "event": "Night swim", "place": "Park Road"}
    # Valid as a brief, but the font is not installed: this run fails, the other runs.
    no_font = {**good, "business": "Opera", "brand": {"heading_font": "Comic Sans MS"}}
    path.write_text(json.dumps([no_font, good]))
    summary = batch(source=str(path))
    failed, ok = summary.results
    assert (failed.status, ok.status) == ("failed", "ok")
    assert failed.error is not None
    assert "Comic Sans MS" in failed.error
    assert "\n" not in failed.error
    assert failed.folder is None
    assert ok.folder is not None
    assert ok.folder.is_dir()
    assert _run_folders(isolated_env / "output") == [ok.folder]


# --- The command line ---------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.batch", *args],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_strict_exits_2_naming_the_bad_row_before_any_work(
    isolated_env: Path, tmp_path: Path
) -> None:
    path = tmp_path / "briefs.csv"
    path.write_text(CSV_TEXT)
    result = run_cli(str(path), "--strict")
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        f"invalid brief: {path} row 2 (line 3): place is required",
        "strict: 1 of 3 briefs are invalid; nothing was run",
    ]
    assert not (isolated_env / "output").exists()


def test_cli_an_unreadable_set_exits_2_in_one_line(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "nothing-here"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"brief error: {tmp_path / 'nothing-here'}: no such file or folder"
    ]


@pytest.mark.slow
def test_cli_runs_the_good_rows_names_the_bad_one_and_exits_1_when_a_run_fails(
    prefect_env: str, isolated_env: Path, fast_settings: None, tmp_path: Path
) -> None:
    path = tmp_path / "briefs.csv"
    path.write_text(CSV_TEXT + "Opera,Gala,Town Hall,,,Comic Sans MS\n")
    result = run_cli(str(path), "--max-parallel", "2")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert result.stderr.splitlines() == [
        f"invalid brief: {path} row 2 (line 3): place is required"
    ]
    lines = result.stdout.splitlines()
    ok = [line for line in lines if line.startswith("ok ")]
    failed = [line for line in lines if line.startswith("failed ")]
    assert len(ok) == 2
    assert len(failed) == 1
    assert f"{path} row 4 (line 5)" in failed[0]
    assert "Comic Sans MS" in failed[0]
    folders = {Path(line.split(": ", 1)[1].rsplit(" (", 1)[0]) for line in ok}
    assert folders == set(_run_folders(isolated_env / "output"))
    assert lines[-1].startswith("Batch: 2 made, 1 failed, 1 invalid; summary in ")
    assert Path(lines[-1].rsplit(" ", 1)[1]).is_file()
