"""The run's Prefect artifacts: copy and thumbnails, files table, progress; escaping."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import Artifact

import tasks.artifacts as artifacts
from flows.flyer import flyer
from hyperlocal.layout.thumbnails import PREVIEW_HEIGHT
from hyperlocal.models import Brief
from tasks.artifacts import (
    ProgressArtifact,
    artifact_key,
    escape_markdown,
    publish_run_artifacts,
    run_markdown,
)
from tasks.progress import ProgressEvent
from tasks.publishing import PublishedRun

HOSTILE = Brief(
    business="<b>x</b> Bakery",
    event="<script>alert(1)</script> ![img](http://x) sale",
    place="12 *Main* St [north]",
    date="Sat 14 June",
    price="£5 | 2 for £8",
)


def test_escape_markdown_leaves_no_tag_link_image_or_emphasis() -> None:
    hostile = "<script>alert(1)</script> ![x](http://evil) [a](javascript:x) *b* _c_ `d` # e | f &g"
    escaped = escape_markdown(hostile + "\n# heading")
    # Every punctuation character carries a backslash: CommonMark prints it as itself.
    assert not re.search(r"(?<!\\)[<>\[\]()*_`#|!&]", escaped.replace("\\\\", ""))
    assert "\n" not in escaped
    assert "\\<script\\>" in escaped
    assert escape_markdown("&lt;") == "\\&lt\\;"
    assert escape_markdown("Fresh bread, 9am") == "Fresh bread\\, 9am"


def test_artifact_keys_are_what_prefect_accepts() -> None:
    key = artifact_key(HOSTILE, "progress")
    assert re.fullmatch(r"[a-z0-9-]+", key)
    assert key.startswith("flyer-")
    assert key.endswith("-progress")


def test_progress_counts_distinct_steps_only_upwards_and_chains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[float] = []
    monkeypatch.setattr(
        artifacts, "update_progress_artifact", lambda _id, value, **_: sent.append(value)
    )
    seen: list[ProgressEvent] = []
    progress = ProgressArtifact(total_steps=5, key="k", interval_s=0.0)
    progress.artifact_id = uuid.uuid4()  # as if created: no server needed here
    listen = progress.listener(seen.append)

    def finished(step: str, variant: int, attempt: int = 1) -> ProgressEvent:
        return ProgressEvent(
            variant=variant, format="square", step=step, state="finished", attempt=attempt
        )

    events = [finished(step, v) for v in (1, 2) for step in ("write_copy", "generate_image")]
    events.append(finished("generate_image", 1, attempt=2))  # a retry: not a new step
    threads = [threading.Thread(target=listen, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    progress.finish()
    assert len(seen) == len(events)  # the earlier listener got every event
    assert sent == sorted(sent)
    assert len(set(sent)) == len(sent)
    assert max(sent[:-1]) == 80.0  # 4 distinct steps of 5; never 100 before finishing
    assert sent[-1] == 100.0


def _artifacts(flow_run_id: uuid.UUID) -> dict[str, Artifact]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {artifact.type or "": artifact for artifact in found}


@pytest.mark.slow
def test_a_run_publishes_escaped_copy_thumbnails_a_table_and_full_progress(
    prefect_env: str, isolated_env: Path
) -> None:
    state: Any = flyer(brief=HOSTILE, variants=2, formats=["square"], return_state=True)
    outcome: PublishedRun = state.result()
    found = _artifacts(state.state_details.flow_run_id)
    assert set(found) >= {"markdown", "table", "progress"}

    markdown = str(found["markdown"].data)
    assert found["markdown"].key == artifact_key(HOSTILE)
    for variant in outcome.manifest.variants:
        assert escape_markdown(variant.copy_.headline) in markdown
        assert escape_markdown(variant.copy_.where) in markdown
    assert markdown.count("](data:image/jpeg;base64,") == 2  # one per flyer
    # The thumbnails are the previews made while publishing (no second decoding).
    assert sorted(outcome.previews) == ["variant_01_square.png", "variant_02_square.png"]
    assert all(f"]({uri})" in markdown for uri in outcome.previews.values())
    assert escape_markdown(str(outcome.folder)) in markdown
    # Hostile text shows escaped: no tag, and every image or link is a thumbnail.
    assert not re.search(r"(?<!\\)[<>]", markdown)
    assert "\\<script\\>" in markdown
    assert re.findall(r"\]\(([a-z]+):", markdown) == ["data", "data"]

    table = found["table"].data
    assert isinstance(table, str)
    rows = json.loads(table)
    assert sorted((row["variant"], row["format"]) for row in rows) == [(1, "square"), (2, "square")]
    for row, variant in zip(rows, outcome.manifest.variants, strict=True):
        fmt = variant.formats[0]
        chosen = next(a for a in fmt.attempts if a.attempt == fmt.chosen_attempt)
        assert row["seed"] == chosen.seed
        assert chosen.qc is not None
        assert row["qc_score"] == chosen.qc.score
        assert row["attempts"] == len(fmt.attempts)
        assert row["files"] == str(outcome.folder / f"variant_0{variant.variant}_square.png")

    assert found["progress"].data == 100.0
    # Outside a flow run the artifacts are skipped, never an error.
    assert publish_run_artifacts(outcome) == {}


def _thumbnail_sizes(markdown: str) -> list[tuple[int, int]]:
    sizes = []
    for encoded in re.findall(r"\]\(data:image/jpeg;base64,([^)]+)\)", markdown):
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as thumb:
            assert thumb.format == "JPEG"
            sizes.append(thumb.size)
    return sizes


@pytest.mark.slow
def test_flyers_without_previews_get_thumbnails_from_their_files(
    prefect_env: str, isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = flyer(brief=HOSTILE, variants=2, formats=["square", "letter"])
    published = run_markdown(outcome.manifest, outcome.folder, outcome.previews)
    from_files = run_markdown(outcome.manifest, outcome.folder)
    for markdown in (published, from_files):
        sizes = _thumbnail_sizes(markdown)
        assert len(sizes) == 4
        assert all(height == PREVIEW_HEIGHT for _, height in sizes)
        # A square flyer 240 tall is 240 wide; a letter one (8.5 x 11 in) 185.5.
        assert sorted(width for width, _ in sizes) in ([185, 185, 240, 240], [186, 186, 240, 240])
    (outcome.folder / "variant_02_letter.png").write_bytes(b"not a picture")
    markdown = run_markdown(outcome.manifest, outcome.folder)
    assert len(_thumbnail_sizes(markdown)) == 3
    assert "variant 2 letter: thumbnail unavailable" in markdown
    assert "no thumbnail for variant_02_letter.png" in caplog.text


@pytest.mark.slow
def test_an_artifact_the_server_refuses_never_fails_the_run(
    prefect_env: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(**_: Any) -> uuid.UUID:
        raise RuntimeError("artifact store is down")

    for name in ("create_markdown_artifact", "create_table_artifact", "create_progress_artifact"):
        monkeypatch.setattr(artifacts, name, refuse)
    outcome = flyer(brief=HOSTILE, variants=1, formats=["square"])
    assert (outcome.folder / "variant_01_square.png").is_file()
    assert caplog.text.count("artifact store is down") == 3


def test_descriptions_are_plain_text_without_markup_or_entities() -> None:
    from tasks.artifacts import plain_description

    text = plain_description("Flyers for <b>Ada's</b>: Bikes &\nmore\x00")
    assert text == "Flyers for bAda's/b: Bikes & more"
