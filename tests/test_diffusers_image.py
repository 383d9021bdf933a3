"""The diffusers image kind on tiny random-weight SDXL pipelines built at test time.

Real diffusers, real torch, real safetensors files, on the CPU: a folder and a
single-file checkpoint, every scheduler, LoRAs, batching and the faults a user
can meet. Only running out of GPU memory is simulated (this machine has no GPU).
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from backends import registry
from backends.base import ImageRequest
from backends.diffusers_image import DiffusersImageBackend, device_lock
from hyperlocal.errors import ConfigurationError
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS
from hyperlocal.models import ImagePrompt, PromptPhrase
from hyperlocal.prompts.fitting import fit_image_prompt
from hyperlocal.settings import Settings, load_settings
from tests.sdxl_single_file import write_original_sdxl_checkpoint
from tests.tiny_sdxl import build_tiny_lora, build_tiny_sdxl, build_tiny_sdxl_pipeline

ZONE = place_design(FORMATS["square"], "frosted").text_zone


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny model the tests load, built once per session (about 5 s)."""
    root = tmp_path_factory.mktemp("sdxl")
    folder = build_tiny_sdxl(root / "tiny-sdxl")
    turbo = root / "tiny-sdxl-turbo"
    turbo.symlink_to(folder, target_is_directory=True)
    pipe = build_tiny_sdxl_pipeline(root)
    return {
        "folder": folder,
        "turbo": turbo,
        "lcm": build_tiny_sdxl(root / "tiny-lcm", lcm=True),
        "single": write_original_sdxl_checkpoint(pipe, root / "tiny-sdxl.safetensors"),
        "lora": build_tiny_lora(root / "loras" / "ink.safetensors"),
        "lcm_lora": build_tiny_lora(root / "loras" / "lcm-lora-tiny.safetensors"),
        "sd15_lora": build_tiny_lora(
            root / "sd15" / "sd15-style.safetensors", cross_attention_dim=64
        ),
    }


def settings_for(model: Path | str, **changes: Any) -> Settings:
    return load_settings(image__kind="diffusers", image__model=str(model), **changes)


def backend_for(model: Path | str, **changes: Any) -> DiffusersImageBackend:
    backend = registry.image_backend(settings_for(model, **changes))
    assert isinstance(backend, DiffusersImageBackend)
    return backend


def request(
    backend: DiffusersImageBackend, seed: int = 1, size: int = 64, subject: str = "a red barn"
) -> ImageRequest:
    art = ImagePrompt(
        phrases=[
            PromptPhrase(text=subject, role="subject", priority=100, weight=1.2),
            PromptPhrase(text="oil painting", role="style", priority=60),
        ],
        negative=[PromptPhrase(text="text, letters", role="quality", priority=90)],
    )
    fitted = fit_image_prompt(
        art,
        syntax=backend.prompt_syntax,
        counters=backend.token_counters(),
        zone=ZONE.describe(),
        mode="fit",
        max_chunks=3,
    )
    return ImageRequest(
        prompt=fitted,
        width=size,
        height=size,
        seed=seed,
        attempt=1,
        steps=2,
        cfg_scale=5.0,
        palette=["#aa3300"],
        text_zone=ZONE,
    )


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.format == "PNG"
        return np.asarray(picture.convert("RGB"), dtype=np.int16)


@pytest.fixture
def steps_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two steps and guidance 5 set by the user, so flavors do not change them."""
    monkeypatch.setenv("HYPERLOCAL_IMAGE__STEPS", "2")
    monkeypatch.setenv("HYPERLOCAL_IMAGE__CFG_SCALE", "5")


# -- loading and determinism ----------------------------------------------------------------


@pytest.mark.usefixtures("steps_2")
def test_a_folder_paints_a_png_of_the_size_asked_with_the_seed_recorded(
    models: dict[str, Path],
) -> None:
    backend = backend_for(models["folder"])
    image = backend.generate(request(backend, seed=11, size=96))
    assert (image.width, image.height, image.seed) == (96, 96, 11)
    assert pixels(image.png).shape == (96, 96, 3)
    assert image.backend.kind == "diffusers"


@pytest.mark.usefixtures("steps_2")
def test_the_same_seed_gives_the_same_pixels_and_another_seed_other_pixels(
    models: dict[str, Path],
) -> None:
    backend = backend_for(models["folder"])
    first = backend.generate(request(backend, seed=7))
    registry.clear()
    again = backend_for(models["folder"])
    assert again.generate(request(again, seed=7)).png == first.png
    other = again.generate(request(again, seed=8))
    assert np.abs(pixels(other.png) - pixels(first.png)).max() > 10


@pytest.mark.usefixtures("steps_2")
def test_a_single_file_checkpoint_with_its_config_folder_paints_what_the_folder_paints(
    models: dict[str, Path],
) -> None:
    from_folder = backend_for(models["folder"])
    from_file = backend_for(models["single"], image__config=str(models["folder"]))
    assert from_file.source.kind == "single_file"
    assert from_file.identity.revision != from_folder.identity.revision
    assert (
        from_file.generate(request(from_file, seed=3)).png
        == from_folder.generate(request(from_folder, seed=3)).png
    )


@pytest.mark.usefixtures("steps_2")
def test_the_pipeline_loads_once_for_many_pictures_from_many_threads(
    models: dict[str, Path],
) -> None:
    backend = backend_for(models["folder"], image__vae_tiling=True)
    assert backend.loads == 0
    seeds = range(20, 26)
    threads = [
        threading.Thread(
            target=lambda s=s: registry.image_backend(
                settings_for(models["folder"], image__vae_tiling=True)
            ).generate(request(backend, seed=s))
        )
        for s in seeds
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.loads == 1
    assert sum(backend.batch_sizes) == len(seeds)


@pytest.mark.usefixtures("steps_2")
def test_concurrent_variants_are_painted_as_one_batch_close_to_their_lone_pixels(
    models: dict[str, Path],
) -> None:
    alone = backend_for(models["folder"], image__max_batch=1)
    lone = {s: pixels(alone.generate(request(alone, seed=s)).png) for s in (31, 32, 33, 34)}
    batched = backend_for(models["folder"], image__max_batch=4)
    found: dict[int, np.ndarray] = {}

    def paint(seed: int) -> None:
        found[seed] = pixels(batched.generate(request(batched, seed=seed)).png)

    threads = [threading.Thread(target=paint, args=(s,)) for s in lone]
    # The device is busy (as with another picture) while the variants ask.
    with device_lock(batched.device):
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while batched.queued < len(threads) and time.monotonic() < deadline:
            time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert batched.batch_sizes == [4]
    for seed, picture in lone.items():
        # Batched matrix products may round the last bit differently, never more.
        assert np.abs(found[seed] - picture).max() <= 2


# -- schedulers, flavors and LoRAs ------------------------------------------------------------


@pytest.mark.usefixtures("steps_2")
@pytest.mark.parametrize(
    ("name", "cls", "karras"),
    [
        ("euler", "EulerDiscreteScheduler", False),
        ("euler_a", "EulerAncestralDiscreteScheduler", False),
        ("dpmpp_2m", "DPMSolverMultistepScheduler", False),
        ("dpmpp_2m_karras", "DPMSolverMultistepScheduler", True),
        ("lcm", "LCMScheduler", False),
    ],
)
def test_each_scheduler_is_built_by_name_and_paints(
    models: dict[str, Path], name: str, cls: str, karras: bool
) -> None:
    backend = backend_for(models["folder"], image__sampler=name)
    image = backend.generate(request(backend, seed=5))
    scheduler = backend.loaded().pipe.scheduler
    assert type(scheduler).__name__ == cls
    assert bool(scheduler.config.get("use_karras_sigmas")) is karras
    assert pixels(image.png).std() > 1
    assert backend.identity.params["scheduler"] == name


def test_an_unknown_scheduler_is_a_configuration_error_naming_the_choices(
    models: dict[str, Path],
) -> None:
    with pytest.raises(ConfigurationError, match=r"HYPERLOCAL_IMAGE__SAMPLER.*dpmpp_2m_karras"):
        backend_for(models["folder"], image__sampler="ddim_magic")


def test_a_turbo_model_samples_with_few_steps_and_guidance_off(models: dict[str, Path]) -> None:
    backend = backend_for(models["turbo"])
    assert (backend.flavor, backend.scheduler) == ("turbo", "euler_a")
    assert backend.sampling(request(backend)) == (2, 0.0)
    backend.generate(request(backend))
    scheduler = backend.loaded().pipe.scheduler.config
    assert scheduler.timestep_spacing == "trailing"
    balanced = backend_for(models["turbo"], profile="balanced")
    assert balanced.sampling(request(balanced)) == (4, 0.0)


def test_steps_and_guidance_the_user_sets_win_over_the_flavor(models: dict[str, Path]) -> None:
    backend = backend_for(models["turbo"], image__steps=3, image__cfg_scale=1.5)
    assert (backend.default_steps, backend.default_cfg) == (None, None)
    asked = request(backend).model_copy(update={"steps": 3, "cfg_scale": 1.5})
    assert backend.sampling(asked) == (3, 1.5)


def test_an_lcm_unet_is_detected_and_gets_the_lcm_scheduler_and_embedded_guidance(
    models: dict[str, Path],
) -> None:
    backend = backend_for(models["lcm"])
    assert (backend.flavor, backend.scheduler) == ("lcm", "lcm")
    assert backend.sampling(request(backend)) == (4, 8.0)
    image = backend.generate(request(backend))
    assert pixels(image.png).std() > 1


def test_an_lcm_lora_on_a_base_model_means_lcm_sampling_with_guidance_off(
    models: dict[str, Path],
) -> None:
    backend = backend_for(
        models["folder"], image__loras=[{"path": str(models["lcm_lora"]), "strength": 1.0}]
    )
    assert (backend.flavor, backend.scheduler) == ("lcm", "lcm")
    assert backend.sampling(request(backend)) == (4, 1.0)


@pytest.mark.usefixtures("steps_2")
def test_a_matching_lora_changes_the_picture_and_its_strength_matters(
    models: dict[str, Path],
) -> None:
    plain = backend_for(models["folder"])
    base = pixels(plain.generate(request(plain, seed=9)).png)
    full = backend_for(models["folder"], image__loras=[{"path": str(models["lora"])}])
    half = backend_for(
        models["folder"], image__loras=[{"path": str(models["lora"]), "strength": 0.3}]
    )
    with_full = pixels(full.generate(request(full, seed=9)).png)
    with_half = pixels(half.generate(request(half, seed=9)).png)
    assert [a.name for a in full.loaded().loras] == ["ink"]
    assert np.abs(with_full - base).max() > 10
    assert np.abs(with_full - with_half).max() > 5
    assert "ink.safetensors@1" in str(full.identity.params["loras"])


@pytest.mark.usefixtures("steps_2")
def test_a_lora_made_for_another_width_is_skipped_with_a_warning(
    models: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    plain = backend_for(models["folder"])
    base = plain.generate(request(plain, seed=9)).png
    loras = [{"path": str(models["sd15_lora"])}, {"path": str(models["lora"]), "strength": 0.0}]
    backend = backend_for(models["folder"], image__loras=loras)
    with caplog.at_level(logging.WARNING, logger="backends.sdxl_loras"):
        image = backend.generate(request(backend, seed=9))
    assert [a.name for a in backend.loaded().loras] == ["ink"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "sd15-style.safetensors" in warnings[0]
    assert "64" in warnings[0]
    assert "80" in warnings[0]
    # The skipped LoRA changed nothing; the one at strength 0 neither.
    assert np.abs(pixels(image.png) - pixels(base)).max() <= 1


def test_a_missing_lora_file_is_a_configuration_error_before_any_work(
    models: dict[str, Path],
) -> None:
    with pytest.raises(ConfigurationError, match="no such LoRA file"):
        backend_for(models["folder"], image__loras=[{"path": "/nowhere/lora.safetensors"}])


# -- prompts -------------------------------------------------------------------------------


def test_prompts_are_counted_with_the_models_own_two_tokenizers(models: dict[str, Path]) -> None:
    backend = backend_for(models["folder"])
    counters = backend.token_counters()
    assert [c.name for c in counters] == ["tokenizer of tiny-sdxl", "tokenizer_2 of tiny-sdxl"]
    assert counters[0].count("a photo of a cat") == 7
    syntax = backend.prompt_syntax
    assert (syntax.encoders, syntax.weights, syntax.chunks) == (2, "compel", "compel")


@pytest.mark.usefixtures("steps_2")
def test_emphasis_reaches_the_encoder_weighted_phrases_change_the_picture(
    models: dict[str, Path],
) -> None:
    backend = backend_for(models["folder"])
    weighted = request(backend, seed=4)
    plain = weighted.model_copy(
        update={
            "prompt": weighted.prompt.model_copy(
                update={
                    "prompt": "a red barn",
                    "prompt_2": "a red barn, oil painting",
                }
            )
        }
    )
    assert weighted.prompt.prompt == "(a red barn)1.2"
    a = pixels(backend.generate(weighted).png)
    b = pixels(backend.generate(plain).png)
    assert np.abs(a - b).max() > 0


@pytest.mark.usefixtures("steps_2")
def test_a_long_prompt_in_chunk_mode_is_encoded_whole(models: dict[str, Path]) -> None:
    backend = backend_for(models["folder"])
    base = request(backend, seed=6)
    long_text = ", ".join(f"detail number {n} of the old wooden barn" for n in range(12))
    chunked = f'("{base.prompt.prompt}", "{long_text}").and()'
    long_request = base.model_copy(
        update={"prompt": base.prompt.model_copy(update={"prompt": chunked, "mode": "chunk"})}
    )
    image = backend.generate(long_request)
    assert pixels(image.png).shape == (64, 64, 3)


# -- faults and bad settings ---------------------------------------------------------------


def test_without_a_model_the_error_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="HYPERLOCAL_IMAGE__MODEL"):
        registry.image_backend(load_settings(image__kind="diffusers"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: "someone/missing-model", "not a local folder or file"),
        (lambda root: root / "missing.safetensors", "no such file or folder"),
        (lambda root: _folder(root, None), "no model_index.json"),
        (lambda root: _folder(root, "StableDiffusionPipeline"), "not an SDXL pipeline"),
        (lambda root: _file(root, "model.ckpt"), "only .safetensors"),
        (lambda root: _file(root, "model.safetensors"), "HYPERLOCAL_IMAGE__CONFIG"),
        (lambda root: "stabilityai/sdxl-turbo", "HYPERLOCAL_IMAGE__ALLOW_DOWNLOAD"),
    ],
)
def test_a_bad_model_is_one_configuration_line_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any, message: str
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ConfigurationError, match=message) as caught:
        registry.image_backend(settings_for(make(tmp_path)))
    assert "\n" not in str(caught.value)


def _folder(root: Path, pipeline: str | None) -> Path:
    folder = root / "not-sdxl"
    folder.mkdir()
    if pipeline:
        (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    return folder


def _file(root: Path, name: str) -> Path:
    file = root / name
    file.write_bytes(b"\0" * 64)
    return file


def test_a_file_that_is_not_a_checkpoint_fails_to_load_in_one_line(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    broken = _file(tmp_path, "broken.safetensors")
    backend = backend_for(broken, image__config=str(models["folder"]))
    with pytest.raises(ConfigurationError, match="cannot load the SDXL model") as caught:
        backend.generate(request(backend))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image__device": "cuda"}, "sees no CUDA device"),
        ({"image__device": "mps"}, "MPS"),
        ({"image__dtype": "float16", "image__device": "cpu"}, "float16 does not run on the CPU"),
        ({"image__cpu_offload": True}, "CPU_OFFLOAD needs a CUDA device"),
    ],
)
def test_an_impossible_device_or_dtype_is_a_configuration_error(
    models: dict[str, Path], changes: dict[str, Any], message: str
) -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigurationError, match=message):
        backend_for(models["folder"], **changes)


def test_a_bad_device_name_is_a_settings_error() -> None:
    from hyperlocal.errors import SettingsError

    with pytest.raises(SettingsError, match="HYPERLOCAL_IMAGE__DEVICE"):
        load_settings(image__device="tpu")


def test_a_missing_extra_names_what_to_install(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from backends import sdxl_pipeline

    real = importlib.util.find_spec
    # diffusers cannot be uninstalled for one test: hide it from the check.
    monkeypatch.setattr(
        sdxl_pipeline.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "diffusers" else real(name, *a),
    )
    with pytest.raises(ConfigurationError, match=r"needs diffusers: .*hyperlocal\[diffusers\]"):
        backend_for(models["folder"])


def test_a_size_not_a_multiple_of_8_is_refused_before_painting(models: dict[str, Path]) -> None:
    backend = backend_for(models["folder"])
    bad = request(backend).model_copy(update={"width": 100})
    with pytest.raises(ConfigurationError, match="multiples of 8"):
        backend.generate(bad)
    assert backend.loads == 0


class _RunsOutOfMemory:
    """Wraps the real pipeline; its first ``failures`` calls raise CUDA's out-of-memory error."""

    def __init__(self, pipe: Any, failures: int) -> None:
        self._pipe = pipe
        self.failures = failures
        self.calls = 0
        self.slicing = False

    def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self._pipe(**kwargs)

    def enable_attention_slicing(self) -> None:
        self.slicing = True
        self._pipe.enable_attention_slicing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


@pytest.fixture
def oom_backend(models: dict[str, Path], steps_2: None) -> Iterator[DiffusersImageBackend]:
    backend = backend_for(models["folder"], image__max_batch=1)
    return backend


def test_out_of_memory_is_retried_once_lean_then_succeeds(
    oom_backend: DiffusersImageBackend,
) -> None:
    loaded = oom_backend.loaded()
    real = loaded.pipe
    loaded.pipe = _RunsOutOfMemory(real, failures=1)
    try:
        image = oom_backend.generate(request(oom_backend, seed=2))
        assert loaded.pipe.calls == 2
        assert loaded.pipe.slicing
        assert loaded.low_memory
        assert real.vae.use_tiling
        assert pixels(image.png).shape == (64, 64, 3)
    finally:
        loaded.pipe = real


def test_out_of_memory_twice_fails_with_a_hint(oom_backend: DiffusersImageBackend) -> None:
    loaded = oom_backend.loaded()
    real = loaded.pipe
    loaded.pipe = _RunsOutOfMemory(real, failures=2)
    try:
        with pytest.raises(ConfigurationError, match=r"CPU_OFFLOAD.*MEGAPIXELS"):
            oom_backend.generate(request(oom_backend, seed=2))
    finally:
        loaded.pipe = real


# -- settings and selection ------------------------------------------------------------------


def test_auto_picks_diffusers_for_a_model_without_a_server(models: dict[str, Path]) -> None:
    settings = load_settings(image__model=str(models["folder"]))
    assert registry.resolve("image", settings).kind == "diffusers"
    with_server = load_settings(image__model="sdxl.safetensors", image__api_url="http://x:7860")
    assert registry.resolve("image", with_server).kind == "a1111"


def test_health_says_model_device_flavor_and_sampling_without_loading(
    models: dict[str, Path],
) -> None:
    # Its own options: a pipeline no other test loaded.
    backend = backend_for(models["turbo"], image__attention_slicing=True)
    health = backend.health()
    assert health.ok
    for word in ("tiny-sdxl-turbo", "cpu", "float32", "turbo", "euler_a", "steps 2"):
        assert word in health.detail
    assert backend.loads == 0


@pytest.mark.slow
def test_a_whole_flyer_run_paints_with_the_tiny_sdxl_model(
    prefect_env: str, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.flyer import flyer
    from hyperlocal.models import Brief

    monkeypatch.setenv("HYPERLOCAL_IMAGE__KIND", "diffusers")
    monkeypatch.setenv("HYPERLOCAL_IMAGE__MODEL", str(models["turbo"]))
    monkeypatch.setenv("HYPERLOCAL_IMAGE__SIZE", "128x128")
    monkeypatch.setenv("HYPERLOCAL_QC__ENABLED", "false")
    brief = Brief(business="Rosie's", event="Sourdough class", place="12 Market St")
    outcome = flyer(brief=brief, variants=2, formats=["square"])
    manifest = outcome.manifest
    identity = manifest.backends["image"]
    assert (identity.kind, identity.params["flavor"]) == ("diffusers", "turbo")
    seeds = [v.formats[0].attempts[0].seed for v in manifest.variants]
    assert len(set(seeds)) == 2
    for n in (1, 2):
        assert (outcome.folder / f"variant_0{n}_square.png").is_file()
    again = flyer(brief=brief, variants=2, formats=["square"])
    assert sum(again.manifest.model_calls.values()) == 0


def test_building_the_backend_asks_torch_for_the_device_once_per_machine(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from backends import sdxl_pipeline

    probes: list[int] = []
    real_probe = sdxl_pipeline._probe_accelerators

    def counted() -> sdxl_pipeline.Accelerators:
        probes.append(1)
        return real_probe()

    monkeypatch.setattr(sdxl_pipeline, "_probe_accelerators", counted)
    settings = load_settings(image__kind="diffusers", image__model=str(models["folder"]))
    first = DiffusersImageBackend.from_settings(settings).identity
    again = DiffusersImageBackend.from_settings(settings).identity
    assert probes == [1]  # the second build read the memo
    assert first == again
    # Another torch installation (or a changed one) is asked again.
    memo = settings.cache_dir / "accelerators.json"
    memo.write_text(memo.read_text().replace('"torch": "', '"torch": "elsewhere'))
    DiffusersImageBackend.from_settings(settings)
    assert probes == [1, 1]
    # A new process on this machine names the device without importing torch, so a
    # run whose pictures are all cached stays light.
    code = (
        "import sys\n"
        "from backends import registry\n"
        "from hyperlocal.settings import load_settings\n"
        "registry.image_backend(load_settings())\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    env = {
        **os.environ,
        "HYPERLOCAL_IMAGE__KIND": "diffusers",
        "HYPERLOCAL_IMAGE__MODEL": str(models["folder"]),
    }
    child = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.stdout.strip() == "[]", child.stdout + child.stderr
