"""``python -m flows.models``: listing, pulling and verifying the models the settings name.

Downloads come from a Range-capable file server of our own on loopback
(``tests.range_file_server``) that can drop the connection half-way, ignore
Range, serve corrupted bytes or answer 404. Hugging Face models come from a
fake cache in the hub's real layout (blobs named by sha256 or git sha1,
snapshot symlinks, refs/main) holding a tiny mlx model. Nothing reaches the
internet.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backends.model_needs import model_entries
from hyperlocal import modelstore
from hyperlocal.errors import ConfigurationError, DownloadFailed, ModelMissing, SettingsError
from hyperlocal.modelstore import select_hub_files, url_download, url_file_name
from hyperlocal.modelstore import verify as model_verify
from hyperlocal.modelstore.progress import LineProgress
from hyperlocal.modelstore.url_download import download_url
from hyperlocal.modelstore.verify import git_blob_sha1
from hyperlocal.settings import RetrySettings, Settings, load_settings
from tests.fake_hub import FakeHub
from tests.range_file_server import RangeFileServer, fake_checkpoint

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SIZE = 4 * 1024 * 1024 + 12345  # a few MB, not a multiple of any chunk size
DATA = fake_checkpoint(SIZE)
DIGEST = hashlib.sha256(DATA).hexdigest()
TOKEN = "civitai-CANARY-5b7e1f"
HF_TOKEN = "hf_CANARY_a9d3c2"
PULL = "python -m flows.models pull"


def run_models(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m flows.models`` in a fresh process with ``env`` on top of the test's."""
    return subprocess.run(
        [sys.executable, "-m", "flows.models", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "240", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def url_env(url: str, models: Path, sha256: str | None = DIGEST) -> dict[str, str]:
    """Settings for one diffusers checkpoint downloaded from ``url``."""
    env = {
        "HYPERLOCAL_IMAGE__KIND": "diffusers",
        "HYPERLOCAL_IMAGE__MODEL": url,
        "HYPERLOCAL_MODELS__DIR": str(models),
    }
    if sha256:
        env["HYPERLOCAL_IMAGE__SHA256"] = sha256
    return env


def dest_for(url: str, models: Path) -> Path:
    return models / "downloads" / url_file_name(url)


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# -- pulling from a URL ---------------------------------------------------------------------


def test_an_interrupted_download_resumes_from_the_bytes_it_already_has(tmp_path: Path) -> None:
    models = tmp_path / "models"
    half = SIZE // 2
    with RangeFileServer(DATA) as server:
        dest = dest_for(server.url, models)
        part = dest.with_name(dest.name + ".part")
        server.drop_after = half
        # No retries: the first pull stops where the connection dropped.
        env = {**url_env(server.url, models), "HYPERLOCAL_RETRY__ATTEMPTS": "0"}
        first = run_models("pull", env=env, cwd=tmp_path)
        assert first.returncode == 1, first.stdout + first.stderr
        assert "resumes" in one_line(first.stderr)
        assert part.stat().st_size == half == server.requests[0].sent
        assert not dest.exists()
        listed = run_models("list", env=url_env(server.url, models), cwd=tmp_path)
        assert f"partial: {modelstore.human_bytes(half)} of {modelstore.human_bytes(SIZE)}" in (
            listed.stdout
        )

        second = run_models("pull", env=url_env(server.url, models), cwd=tmp_path)
        assert second.returncode == 0, second.stdout + second.stderr
        resumed = server.requests[-1]
    print(
        f"\nresume: file {SIZE} bytes; first request sent {server.requests[0].sent} bytes "
        f"before the drop, .part held {half}; second request Range {resumed.range!r} "
        f"(If-Range {resumed.if_range}), status {resumed.status}, sent {resumed.sent} bytes "
        f"= {SIZE} - {half}"
    )
    assert len(server.requests) == 2
    assert resumed.range == f"bytes={half}-"
    assert resumed.if_range == server.etag
    assert resumed.status == 206
    assert resumed.sent == SIZE - half
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == DIGEST
    assert dest.with_name(dest.name + ".sha256").read_text() == f"{DIGEST}  {dest.name}\n"
    assert not part.exists()
    assert not dest.with_name(dest.name + ".part.json").exists()
    assert "fetched" in second.stdout


def test_a_corrupted_download_fails_its_sha256_and_is_not_put_in_place(tmp_path: Path) -> None:
    models = tmp_path / "models"
    corrupted = bytearray(DATA)
    corrupted[SIZE // 3] ^= 0xFF
    with RangeFileServer(bytes(corrupted)) as server:
        result = run_models("pull", env=url_env(server.url, models), cwd=tmp_path)
        dest = dest_for(server.url, models)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "sha256 mismatch" in line
    assert f"expected {DIGEST}" in line
    assert f"got {hashlib.sha256(bytes(corrupted)).hexdigest()}" in line
    assert not dest.exists()
    assert list(dest.parent.glob("*.part*")) == []


def test_a_server_that_ignores_range_makes_the_download_start_over(tmp_path: Path) -> None:
    models = tmp_path / "models"
    with RangeFileServer(DATA) as server:
        server.drop_after = SIZE // 3
        env = {**url_env(server.url, models), "HYPERLOCAL_RETRY__ATTEMPTS": "0"}
        assert run_models("pull", env=env, cwd=tmp_path).returncode == 1
        server.ignore_range = True
        result = run_models("pull", env=url_env(server.url, models), cwd=tmp_path)
        dest = dest_for(server.url, models)
        last = server.requests[-1]
    assert result.returncode == 0, result.stderr
    assert last.range == f"bytes={SIZE // 3}-"
    assert (last.status, last.sent) == (200, SIZE)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == DIGEST


def test_a_missing_file_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    with RangeFileServer(DATA) as server:
        server.missing = True
        result = run_models("pull", env=url_env(server.url, tmp_path / "models"), cwd=tmp_path)
    assert result.returncode == 1
    assert "HTTP 404" in one_line(result.stderr)


def test_a_dropped_connection_is_resumed_within_the_same_pull(tmp_path: Path) -> None:
    with RangeFileServer(DATA) as server:
        server.drop_after = 1_000_000
        dest = tmp_path / "model.safetensors"
        lines: list[str] = []
        download_url(
            server.url,
            dest,
            sha256=DIGEST,
            retry=RetrySettings(attempts=1, delay_s=0),
            progress=LineProgress(lines.append),
        )
    assert [(r.range, r.sent) for r in server.requests] == [
        (None, 1_000_000),
        ("bytes=1000000-", SIZE - 1_000_000),
    ]
    assert dest.read_bytes() == DATA
    assert any("resuming at" in line for line in lines)


def test_a_file_changed_on_the_server_is_never_spliced_onto_the_old_part(tmp_path: Path) -> None:
    dest = tmp_path / "model.safetensors"
    newer = fake_checkpoint(SIZE, seed=8)
    with RangeFileServer(DATA) as server:
        server.drop_after = SIZE // 2
        with pytest.raises(DownloadFailed):
            download_url(server.url, dest, retry=RetrySettings(attempts=0))
        server.data, server.etag = newer, '"changed"'
        download_url(server.url, dest, retry=RetrySettings(attempts=0))
        last = server.requests[-1]
    # If-Range carried the old ETag, so the server sent the new file whole.
    assert (last.range, last.status, last.sent) == (f"bytes={SIZE // 2}-", 200, SIZE)
    assert dest.read_bytes() == newer


def write_part(dest: Path, data: bytes, url: str) -> None:
    """Leave a partial download of ``url`` at ``dest``, as an interrupted pull does."""
    dest.with_name(dest.name + ".part").write_bytes(data)
    meta = {"url": hashlib.sha256(url.encode()).hexdigest(), "validator": None, "total": SIZE}
    dest.with_name(dest.name + ".part.json").write_text(json.dumps(meta))


def test_a_part_that_is_already_whole_is_finished_without_a_body(tmp_path: Path) -> None:
    dest = tmp_path / "model.safetensors"
    with RangeFileServer(DATA) as server:
        write_part(dest, DATA, server.url)
        download_url(server.url, dest, sha256=DIGEST)
        answered = [(r.range, r.status, r.sent) for r in server.requests]
    assert answered == [(f"bytes={SIZE}-", 416, 0)]
    assert dest.read_bytes() == DATA


def test_a_part_left_by_another_url_is_never_reused(tmp_path: Path) -> None:
    dest = tmp_path / "model.safetensors"
    write_part(dest, DATA[: SIZE // 2], "https://example.com/another/model.safetensors")
    with RangeFileServer(DATA) as server:
        download_url(server.url, dest, sha256=DIGEST)
        answered = [(r.range, r.status, r.sent) for r in server.requests]
    assert answered == [(None, 200, SIZE)]
    assert dest.read_bytes() == DATA


def test_the_token_goes_to_the_first_host_only_and_never_to_the_output(tmp_path: Path) -> None:
    models = tmp_path / "models"
    with RangeFileServer(DATA) as cdn, RangeFileServer(DATA) as site:
        site.redirect_to = cdn.url  # as Civitai redirects to its storage
        env = {
            **url_env(site.url, models),
            "HYPERLOCAL_MODELS__DOWNLOAD_TOKEN": TOKEN,
            "HYPERLOCAL_MODELS__HF_TOKEN": HF_TOKEN,
        }
        pulled = run_models("pull", env=env, cwd=tmp_path)
        listed = run_models("list", env=env, cwd=tmp_path)
        verified = run_models("verify", env=env, cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    assert [r.authorization for r in site.requests] == [f"Bearer {TOKEN}"]
    assert [r.authorization for r in cdn.requests] == [None]
    for result in (pulled, listed, verified):
        shown = result.stdout + result.stderr
        assert TOKEN not in shown
        assert HF_TOKEN not in shown
        assert "CANARY" not in shown
    assert listed.returncode == verified.returncode == 0
    for file in models.rglob("*"):
        assert file.is_dir() or b"CANARY" not in file.read_bytes()


def test_the_token_is_not_sent_over_plain_http_to_another_host() -> None:
    assert url_download._auth_allowed("https://civitai.com/api/download/models/1")
    assert url_download._auth_allowed("http://127.0.0.1:8000/x")
    assert not url_download._auth_allowed("http://civitai.com/api/download/models/1")


def test_the_tokens_stay_out_of_the_manifest_settings() -> None:
    settings = Settings(models={"hf_token": HF_TOKEN, "download_token": TOKEN})
    text = json.dumps(settings.public_dict())
    assert HF_TOKEN not in text
    assert TOKEN not in text
    assert settings.models.download_token is not None
    assert settings.models.download_token.get_secret_value() == TOKEN


# -- list and verify on a folder of tiny models ---------------------------------------------


def fake_hub_cache(cache: Path, repo_id: str, model: Path) -> Path:
    """Put the files of ``model`` into ``cache`` the way huggingface_hub lays a snapshot out.

    Weights are LFS blobs (named by their sha256), other files git blobs (named by
    their git sha1); the snapshot's files are relative symlinks into blobs/.
    Returns the snapshot folder.
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for file in sorted(p for p in model.rglob("*") if p.is_file()):
        if file.suffix == ".safetensors":
            blob_id = hashlib.sha256(file.read_bytes()).hexdigest()
        else:
            blob_id = git_blob_sha1(file)
        shutil.copyfile(file, repo / "blobs" / blob_id)
        link = snapshot / file.relative_to(model)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / blob_id, link.parent))
    return snapshot


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import build_tiny_mlx_lm

    return build_tiny_mlx_lm(tmp_path_factory.mktemp("tiny-lm") / "model")


def sdxl_like_folder(root: Path) -> Path:
    """A small local model folder with a SHA256SUMS file (not loadable: list and verify only)."""
    folder = root / "local-sdxl"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(fake_checkpoint(4096))
    sums = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder)}"
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return folder


def test_list_and_verify_on_a_folder_of_tiny_models(tiny_lm: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    snapshot = fake_hub_cache(cache, "tiny-org/tiny-lm", tiny_lm)
    local = sdxl_like_folder(tmp_path)
    env = {
        "HF_HUB_CACHE": str(cache),
        "HYPERLOCAL_TEXT__KIND": "mlx",
        "HYPERLOCAL_TEXT__MODEL": "tiny-org/tiny-lm",
        "HYPERLOCAL_VISION__KIND": "mlx",
        "HYPERLOCAL_VISION__MODEL": "tiny-org/not-downloaded-vlm",
        "HYPERLOCAL_IMAGE__KIND": "diffusers",
        "HYPERLOCAL_IMAGE__MODEL": str(local),
    }
    listed = run_models("list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if "│" in line}
    size = modelstore.human_bytes(modelstore.disk_size(snapshot))
    assert "present" in rows["text"]
    assert str(snapshot) in rows["text"]
    assert size in rows["text"]
    assert "missing" in rows["vision"]
    assert PULL in rows["vision"]
    assert "models--tiny-org--not-downloaded-vlm" in rows["vision"]
    assert "present" in rows["image"]
    print("\n" + listed.stdout)

    roles = ["--role", "text", "--role", "image"]
    good = run_models("verify", *roles, env=env, cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert sum(line.startswith("ok ") for line in good.stdout.splitlines()) == 2
    # The vision model is missing: verify of every role says so.
    everything = run_models("verify", env=env, cwd=tmp_path)
    assert everything.returncode == 1
    assert PULL in everything.stderr

    weights = (snapshot / "model.safetensors").resolve()
    assert weights.name == hashlib.sha256(weights.read_bytes()).hexdigest()  # an LFS blob
    tampered = bytearray(weights.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    weights.write_bytes(bytes(tampered))
    local_weights = local / "unet" / "diffusion_pytorch_model.safetensors"
    local_weights.write_bytes(local_weights.read_bytes()[:-1] + b"!")
    bad = run_models("verify", *roles, env=env, cwd=tmp_path)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 2, bad.stderr
    assert "model.safetensors" in lines[0]
    assert f"expected {weights.name}" in lines[0]
    assert "diffusion_pytorch_model.safetensors" in lines[1]
    assert "Traceback" not in bad.stderr


def test_a_hub_model_is_pulled_once_with_only_the_files_mlx_reads(
    tiny_lm: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_lm, repo)
    (repo / "pytorch_model.bin").write_bytes(b"pickled weights mlx never reads")
    (repo / "README.md").write_text("# tiny")
    with FakeHub("tiny-org/tiny-lm", repo) as hub:
        env = {
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_CACHE": str(tmp_path / "hub"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HYPERLOCAL_TEXT__KIND": "mlx",
            "HYPERLOCAL_TEXT__MODEL": "tiny-org/tiny-lm",
            "HYPERLOCAL_MODELS__HF_TOKEN": HF_TOKEN,
        }
        pulled = run_models("pull", env=env, cwd=tmp_path)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        fetched = sorted(hub.downloaded())
        again = run_models("pull", env=env, cwd=tmp_path)
        offline = {**env, "HF_HUB_OFFLINE": "1"}
        listed = run_models("list", env=offline, cwd=tmp_path)
        verified = run_models("verify", env=offline, cwd=tmp_path)
        tokens = {auth for _method, _path, auth in hub.requests}
    assert fetched == sorted(
        ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    )
    assert "skipped text model tiny-org/tiny-lm: present" in again.stdout
    assert len(hub.downloaded()) == len(fetched)  # the second pull fetched nothing
    assert tokens == {f"Bearer {HF_TOKEN}"}
    assert "present" in listed.stdout
    assert verified.returncode == 0, verified.stderr
    assert "ok text model tiny-org/tiny-lm: 4 file(s) match" in verified.stdout
    for result in (pulled, again, listed, verified):
        assert "CANARY" not in result.stdout + result.stderr


def test_a_git_blob_that_changed_fails_verify(tiny_lm: Path, tmp_path: Path) -> None:
    snapshot = fake_hub_cache(tmp_path / "hub", "tiny-org/tiny-lm", tiny_lm)
    config = (snapshot / "config.json").resolve()
    assert config.name == git_blob_sha1(config)
    config.write_text(config.read_text().replace("qwen2", "qwen3"))
    entry = modelstore.ModelEntry(
        role="text",
        what="model",
        reference="tiny-org/tiny-lm",
        kind="hub",
        purpose="mlx-lm",
        where=str(snapshot),
        present=True,
    )
    failed = [check for check in model_verify.verify(entry) if check.bad]
    assert [Path(check.path).name for check in failed] == ["config.json"]
    assert "git sha1" in failed[0].detail


def test_a_downloaded_hub_model_counts_as_local_for_auto(
    tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backends import registry
    from backends.mlx_text import MlxTextBackend

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    settings = load_settings(text__model="tiny-org/tiny-lm")
    assert registry.resolve("text", settings).kind == "builtin"  # not downloaded yet
    [entry] = model_entries(settings, ["text"])
    assert (entry.kind, entry.present) == ("hub", False)
    with pytest.raises(ModelMissing, match=PULL):
        MlxTextBackend.from_settings(load_settings(text__kind="mlx", text__model="tiny-org/x").text)

    snapshot = fake_hub_cache(tmp_path / "hub", "tiny-org/tiny-lm", tiny_lm)
    assert registry.resolve("text", settings).kind == "mlx"
    backend = MlxTextBackend.from_settings(settings.text)
    assert backend.folder == snapshot.resolve()
    assert backend.identity.model.startswith("tiny-org/tiny-lm@")


def _flyer_cli(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a one-variant, one-format flyer from the command line in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "flows.flyer", "--variants=1", "--format=square"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_flyer_run_without_its_model_names_the_pull_command(
    prefect_env: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(tmp_path / "empty-hub"),
        "HYPERLOCAL_TEXT__KIND": "mlx",
        "HYPERLOCAL_TEXT__MODEL": "tiny-org/not-downloaded",
    }
    result = _flyer_cli(env, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_line(result.stderr)
    assert line.startswith("missing model:")
    assert PULL in line
    assert "HYPERLOCAL_TEXT__MODEL=tiny-org/not-downloaded" in line


@pytest.mark.slow
def test_a_flyer_run_allowed_to_pull_fetches_its_model_first(
    prefect_env: str, tiny_lm: Path, tmp_path: Path
) -> None:
    with FakeHub("tiny-org/tiny-lm", tiny_lm) as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_CACHE": str(tmp_path / "hub"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HYPERLOCAL_TEXT__KIND": "mlx",
            "HYPERLOCAL_TEXT__MODEL": "tiny-org/tiny-lm",
            "HYPERLOCAL_TEXT__MAX_TOKENS": "16",
            # Random weights write junk: the builtin copywriter takes over.
            "HYPERLOCAL_TEXT__ON_INVALID_OUTPUT": "builtin",
            "HYPERLOCAL_MODELS__ALLOW_PULL": "true",
        }
        result = _flyer_cli(env, tmp_path)
        fetched = hub.downloaded()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "model.safetensors" in fetched
    assert (tmp_path / "hub" / "models--tiny-org--tiny-lm" / "refs" / "main").is_file()


def test_bad_model_settings_are_one_line_and_exit_code_2(tmp_path: Path) -> None:
    env = {"HYPERLOCAL_IMAGE__SHA256": "not-a-digest", "HYPERLOCAL_IMAGE__KIND": "diffusers"}
    result = run_models("list", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "HYPERLOCAL_IMAGE__SHA256" in one_line(result.stderr)
    with pytest.raises(SettingsError, match="64 hexadecimal"):
        load_settings(image__sha256="abc")
    assert load_settings(image__sha256=DIGEST.upper()).image.sha256 == DIGEST


def test_with_nothing_in_process_there_is_nothing_to_hold(tmp_path: Path) -> None:
    env = {
        "HYPERLOCAL_TEXT__BASE_URL": "http://127.0.0.1:9/v1",
        "HYPERLOCAL_TEXT__MODEL": "qwen3",
    }
    listed = run_models("list", env=env, cwd=tmp_path)
    assert listed.returncode == 0
    assert "served" in listed.stdout
    pulled = run_models("pull", env=env, cwd=tmp_path)
    assert pulled.returncode == 0
    assert "skipped text model qwen3: served by http://127.0.0.1:9/v1" in pulled.stdout


# -- pure parts: references, names, file choices ----------------------------------------------


def test_references_are_classified_as_path_url_or_hub(tmp_path: Path) -> None:
    assert modelstore.classify("stabilityai/sdxl-turbo") == "hub"
    assert modelstore.classify("https://civitai.com/api/download/models/351306") == "url"
    assert modelstore.classify("./models/sdxl") == "path"
    assert modelstore.classify("~/sdxl.safetensors") == "path"
    assert modelstore.classify("sdxl.safetensors") == "path"
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert modelstore.classify(str(tmp_path / "org" / "name")) == "path"


def test_a_civitai_link_gets_a_unique_safetensors_name() -> None:
    first = url_file_name(
        "https://civitai.com/api/download/models/351306?type=Model&format=SafeTensor"
    )
    other = url_file_name("https://civitai.com/api/download/models/351306?type=Model&format=Other")
    assert first.startswith("351306-")
    assert first.endswith(".safetensors")
    assert first != other
    named = url_file_name("https://example.com/files/My%20Model.safetensors")
    assert named.startswith("My_Model-")
    assert named.count(".safetensors") == 1
    with pytest.raises(ConfigurationError, match=r"only \.safetensors"):
        url_file_name("https://example.com/files/model.ckpt")


def test_a_token_in_a_url_query_is_never_shown() -> None:
    shown = modelstore.display_reference("https://x.org/m/1?type=Model&token=s3cret")
    assert "s3cret" not in shown
    assert "type=Model" in shown


SDXL_BASE_FILES = [
    ".gitattributes",
    "01.png",
    "LICENSE.md",
    "README.md",
    "model_index.json",
    "scheduler/scheduler_config.json",
    "sd_xl_base_1.0.safetensors",
    "sd_xl_base_1.0_0.9vae.safetensors",
    "sd_xl_offset_example-lora_1.0.safetensors",
    "text_encoder/config.json",
    "text_encoder/flax_model.msgpack",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.onnx",
    "text_encoder/model.safetensors",
    "text_encoder/openvino_model.bin",
    "text_encoder_2/config.json",
    "text_encoder_2/model.fp16.safetensors",
    "text_encoder_2/model.onnx",
    "text_encoder_2/model.onnx_data",
    "text_encoder_2/model.safetensors",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/vocab.json",
    "unet/config.json",
    "unet/diffusion_flax_model.msgpack",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/model.onnx",
    "unet/model.onnx_data",
    "unet/openvino_model.bin",
    "vae/config.json",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "vae_1_0/config.json",
    "vae_1_0/diffusion_pytorch_model.fp16.safetensors",
    "vae_decoder/model.onnx",
]
SDXL_CONFIGS = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder_2/config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/vocab.json",
    "unet/config.json",
    "vae/config.json",
]


def test_an_sdxl_repository_is_fetched_without_pickles_onnx_or_single_files() -> None:
    half = select_hub_files("sdxl", SDXL_BASE_FILES, prefer_fp16=True)
    assert half == sorted(
        [
            *SDXL_CONFIGS,
            "text_encoder/model.fp16.safetensors",
            "text_encoder_2/model.fp16.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/diffusion_pytorch_model.fp16.safetensors",
        ]
    )
    full = select_hub_files("sdxl", SDXL_BASE_FILES, prefer_fp16=False)
    assert "unet/diffusion_pytorch_model.safetensors" in full
    assert not any(".fp16." in name for name in full)
    assert select_hub_files("sdxl-config", SDXL_BASE_FILES) == SDXL_CONFIGS


def test_sharded_fp16_weights_and_their_index_are_kept_together() -> None:
    files = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
    ]
    assert select_hub_files("sdxl", files) == [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
    ]


def test_mlx_and_lora_repositories_keep_what_their_loaders_read() -> None:
    files = [
        "README.md",
        "config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ]
    assert select_hub_files("mlx-lm", files) == [
        "chat_template.jinja",
        "config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    lora = ["README.md", "pytorch_lora_weights.safetensors", "sub/other.safetensors"]
    assert select_hub_files("lora", lora) == ["pytorch_lora_weights.safetensors"]


def test_a_folder_holding_only_fp16_weights_loads_as_the_fp16_variant(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    (tmp_path / "vae").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"x")
    (tmp_path / "vae" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"x")
    assert modelstore.sdxl_folder_variant(tmp_path) == "fp16"
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    assert modelstore.sdxl_folder_variant(tmp_path) is None


def test_a_url_model_that_is_not_downloaded_stops_the_image_backend(tmp_path: Path) -> None:
    from backends.sdxl_pipeline import localized

    settings = load_settings(
        image__kind="diffusers",
        image__model="https://civitai.com/api/download/models/351306",
        models__dir=str(tmp_path),
    )
    with pytest.raises(ModelMissing, match=f"HYPERLOCAL_IMAGE__MODEL=.*{PULL}") as missing:
        localized(settings.image, settings.models)
    assert "\n" not in str(missing.value)
    dest = dest_for(settings.image.model or "", tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(DATA)
    assert localized(settings.image, settings.models).model == str(dest)
