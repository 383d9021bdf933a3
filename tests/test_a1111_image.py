"""The AUTOMATIC1111 image backend against a scripted server of our own (offline, fast)."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prefect import flow

from backends import registry
from backends.a1111_image import A1111ImageBackend, a1111_sampler, decode_png
from backends.base import ImageBackend, ImageRequest
from hyperlocal.errors import (
    BackendBusy,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
    InvalidImage,
)
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS
from hyperlocal.models import Brief, GeneratedImage, ImagePrompt, PromptPhrase, PromptSyntax
from hyperlocal.prompts.clip_tokens import clip_counter
from hyperlocal.prompts.fitting import fit_image_prompt
from hyperlocal.settings import ImageSettings, Settings, load_settings
from tests.scripted_a1111 import CHECKPOINTS, ScriptedA1111, Step, closed_port_url

ZONE = place_design(FORMATS["square"], "frosted").text_zone
A1111_SYNTAX = PromptSyntax(encoders=1, weights="a1111", chunks="a1111")
USER, PASSWORD = "painter", "pw-very-secret-0123456789"
CHECKPOINT = "juggernautXL_v9.safetensors [c9e3e68f89]"


def fitted_prompt() -> Any:
    return fit_image_prompt(
        ImagePrompt(
            phrases=[
                PromptPhrase(text="sourdough loaves", role="subject", priority=100, weight=1.2),
                PromptPhrase(text="warm editorial photograph", role="style", priority=80),
            ],
            negative=[PromptPhrase(text="text, letters, watermark", role="quality", priority=100)],
        ),
        syntax=A1111_SYNTAX,
        counters=[clip_counter()],
        zone=ZONE.describe(),
    )


def image_request(width: int = 256, height: int = 256, seed: int = 1234) -> ImageRequest:
    return ImageRequest(
        prompt=fitted_prompt(),
        width=width,
        height=height,
        seed=seed,
        attempt=1,
        steps=25,
        cfg_scale=6.5,
        palette=["#1F3A5F", "#F2A541", "#FDF6EC"],
        text_zone=ZONE,
    )


def backend(url: str, **options: Any) -> A1111ImageBackend:
    options.setdefault("timeout_s", 5)
    return A1111ImageBackend(url, **options)


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{PASSWORD}@")


@pytest.fixture
def restore_builders() -> Iterator[None]:
    saved = dict(registry._BUILDERS)
    yield
    registry._BUILDERS.clear()
    registry._BUILDERS.update(saved)
    registry.clear()


# -- the request and the answer -------------------------------------------------------------


def test_the_request_carries_prompt_negative_seed_sampler_steps_cfg_size_and_checkpoint() -> None:
    request = image_request(width=256, height=192)
    with ScriptedA1111() as server:
        painter = backend(server.url, checkpoint=CHECKPOINT, sampler="dpmpp_2m_karras")
        image = painter.generate(request)
        [sent] = server.txt2img_requests
    body = sent.body
    assert body["prompt"] == request.prompt.prompt
    assert "(sourdough loaves:1.2)" in body["prompt"]
    assert body["negative_prompt"] == request.prompt.negative_prompt
    assert "watermark" in body["negative_prompt"]
    assert body["seed"] == 1234
    assert body["sampler_name"] == "DPM++ 2M Karras"
    assert (body["steps"], body["cfg_scale"]) == (25, 6.5)
    assert (body["width"], body["height"]) == (256, 192)
    assert (body["batch_size"], body["n_iter"]) == (1, 1)
    assert body["override_settings"] == {"sd_model_checkpoint": CHECKPOINT}
    assert body["override_settings_restore_afterwards"] is True
    assert (image.width, image.height, image.seed, image.attempt) == (256, 192, 1234, 1)
    with Image.open(io.BytesIO(image.png)) as picture:
        assert (picture.format, picture.size) == ("PNG", (256, 192))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("euler", "Euler"),
        ("euler_a", "Euler a"),
        ("dpmpp_2m", "DPM++ 2M"),
        ("dpmpp_2m_karras", "DPM++ 2M Karras"),
        ("lcm", "LCM"),
        ("DPM++ SDE", "DPM++ SDE"),
    ],
)
def test_sampler_names_map_to_a1111_names_and_others_pass_through(ours: str, theirs: str) -> None:
    assert a1111_sampler(ours) == theirs
    assert (
        backend("http://127.0.0.1:1", sampler=ours).payload(image_request())["sampler_name"]
        == theirs
    )


def test_without_checkpoint_or_sampler_the_server_keeps_its_own() -> None:
    painter = backend("http://127.0.0.1:1")
    body = painter.payload(image_request())
    assert "override_settings" not in body
    assert "sampler_name" not in body
    assert painter.identity.model == "server default"


def test_the_seed_the_server_used_comes_back_from_info_all_seeds() -> None:
    with ScriptedA1111([Step(seed=987654)]) as server:
        image = backend(server.url).generate(image_request(seed=5))
        assert server.txt2img_requests[0].body["seed"] == 5
    assert image.seed == 987654


def test_a_data_uri_prefix_on_the_picture_is_accepted() -> None:
    with ScriptedA1111([Step(picture="data_uri")]) as server:
        image = backend(server.url).generate(image_request())
    assert image.png.startswith(b"\x89PNG")


def test_identity_names_kind_checkpoint_and_sampler_but_not_steps_or_the_url() -> None:
    painter = backend("http://127.0.0.1:1", checkpoint=CHECKPOINT, sampler="euler_a")
    identity = painter.identity
    assert (identity.role, identity.kind, identity.model) == ("image", "a1111", CHECKPOINT)
    assert identity.params == {"sampler": "Euler a"}
    assert isinstance(painter, ImageBackend)
    assert painter.prompt_syntax == A1111_SYNTAX
    assert [c.name for c in painter.token_counters()] == [clip_counter().name]


# -- faults ---------------------------------------------------------------------------------


def test_503_is_busy_and_the_next_call_succeeds() -> None:
    with ScriptedA1111([Step(503, "Service Unavailable"), Step()]) as server:
        painter = backend(server.url)
        with pytest.raises(BackendBusy, match="HTTP 503"):
            painter.generate(image_request())
        assert painter.generate(image_request()).width == 256


@pytest.mark.slow
def test_the_prefect_task_retries_a_503_and_succeeds(
    prefect_env: str, restore_builders: None, tmp_path: Path
) -> None:
    from tasks.images import generate_image

    with ScriptedA1111([Step(503, "busy"), Step()]) as server:
        painter = backend(server.url)
        registry.register("image", "builtin", lambda settings: painter)
        retrying = generate_image.with_options(
            retries=2, retry_delay_seconds=0, refresh_cache=True, result_storage=tmp_path
        )

        @flow
        def one_picture() -> GeneratedImage:
            return retrying(image_request(), Settings())

        image = one_picture()
        assert len(server.txt2img_requests) == 2
    assert image.backend.kind == "a1111"
    assert (image.width, image.height) == (256, 256)


def test_a_slow_server_is_a_timeout_within_about_a_second() -> None:
    with ScriptedA1111([Step(delay_s=3)]) as server:
        started = time.monotonic()
        with pytest.raises(BackendTimeout, match=r"within 0\.5 s"):
            backend(server.url, timeout_s=0.5).generate(image_request())
        assert time.monotonic() - started < 2.5  # the answer would take 3 s


def test_a_server_without_api_is_a_configuration_error_asking_for_dash_dash_api() -> None:
    with (
        ScriptedA1111(api=False) as server,
        pytest.raises(ConfigurationError, match="--api") as info,
    ):
        backend(server.url).generate(image_request())
    assert f"{server.url}/sdapi/v1/txt2img not found" in str(info.value)


def test_an_unknown_sampler_404_quotes_the_server_and_names_the_setting() -> None:
    with (
        ScriptedA1111([Step(404, "Sampler not found")]) as server,
        pytest.raises(ConfigurationError, match=r"Sampler not found.*SAMPLER"),
    ):
        backend(server.url, sampler="bogus").generate(image_request())


def test_a_422_is_a_configuration_error_quoting_the_servers_detail() -> None:
    detail = [{"loc": ["body", "steps"], "msg": "value is not a valid integer", "type": "x"}]
    with (
        ScriptedA1111([Step(422, detail)]) as server,
        pytest.raises(ConfigurationError, match=r"HTTP 422.*steps: value is not a valid"),
    ):
        backend(server.url).generate(image_request())


@pytest.mark.parametrize(
    ("picture", "reason"),
    [
        ("not_png", "not a picture"),
        ("jpeg", "JPEG, not PNG"),
        ("one_pixel", "1x1"),
    ],
)
def test_a_payload_that_is_not_a_usable_png_is_invalid_image(picture: Any, reason: str) -> None:
    with (
        ScriptedA1111([Step(picture=picture)]) as server,
        pytest.raises(InvalidImage, match=reason),
    ):
        backend(server.url).generate(image_request())


def test_a_picture_of_the_wrong_size_is_invalid_image() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (128, 128)).save(buffer, format="PNG")
    with pytest.raises(InvalidImage, match="128x128, not the requested 256x256"):
        decode_png(base64.b64encode(buffer.getvalue()).decode(), 256, 256)
    with pytest.raises(InvalidImage, match="not valid base64"):
        decode_png("!!not base64!!", 256, 256)


def test_a_size_not_a_multiple_of_8_is_a_configuration_error_and_nothing_is_sent() -> None:
    with ScriptedA1111() as server:
        with pytest.raises(ConfigurationError, match=r"multiples of 8.*260x256"):
            backend(server.url).generate(image_request(width=260))
        assert server.requests == []


def test_connection_refused_is_unavailable_and_names_the_url() -> None:
    url = closed_port_url()
    with pytest.raises(BackendUnavailable) as info:
        backend(url).generate(image_request())
    assert f"{url}/sdapi/v1/txt2img" in str(info.value)
    assert "is the server running?" in str(info.value)


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown() -> None:
    with ScriptedA1111([Step(), Step(503, "busy")], auth=(USER, PASSWORD)) as server:
        painter = backend(with_credentials(server.url), checkpoint=CHECKPOINT)
        assert painter.generate(image_request()).width == 256
        with pytest.raises(BackendBusy) as busy:
            painter.generate(image_request())
        refused = backend(server.url.replace("http://", "http://painter:wrong@"))
        with pytest.raises(ConfigurationError, match="--api-auth") as denied:
            refused.generate(image_request())
        health = painter.health()
    closed = backend(with_credentials(closed_port_url()))
    with pytest.raises(BackendUnavailable) as down:
        closed.generate(image_request())
    shown = [
        str(busy.value),
        str(denied.value),
        str(down.value),
        health.detail,
        closed.health().detail,
        repr(painter),
        painter.identity.model_dump_json(),
    ]
    for text in shown:
        assert PASSWORD not in text
        assert f"{USER}:" not in text


# -- health ---------------------------------------------------------------------------------


def test_health_is_ok_and_names_the_current_checkpoint_and_lists_the_others() -> None:
    with ScriptedA1111() as server:
        health = backend(server.url, checkpoint="juggernautXL_v9").health()
    assert health.ok
    assert (health.role, health.kind) == ("image", "a1111")
    assert f"current checkpoint {CHECKPOINTS[0]}" in health.detail
    assert health.models == list(CHECKPOINTS)
    assert health.latency_s is not None


def test_health_without_options_is_still_ok() -> None:
    with ScriptedA1111(options=False) as server:
        health = backend(server.url).health()
    assert health.ok
    assert "current checkpoint unknown" in health.detail


def test_health_is_not_ok_for_a_checkpoint_the_server_does_not_have() -> None:
    with ScriptedA1111() as server:
        health = backend(server.url, checkpoint="missing.safetensors").health()
    assert not health.ok
    assert "'missing.safetensors' is not among" in health.detail
    assert "HYPERLOCAL_IMAGE__MODEL" in health.detail


def test_health_is_not_ok_without_api_or_server_and_never_raises() -> None:
    with ScriptedA1111(api=False) as server:
        no_api = backend(server.url).health()
    assert not no_api.ok
    assert "--api" in no_api.detail
    down = backend(closed_port_url()).health()
    assert not down.ok
    assert "is the server running?" in down.detail


# -- settings and the whole flow ------------------------------------------------------------


def test_from_settings_needs_an_api_url_and_names_both_variables() -> None:
    with pytest.raises(ConfigurationError, match=r"HYPERLOCAL_IMAGE__API_URL.*SDXL_API_URL"):
        A1111ImageBackend.from_settings(ImageSettings())
    painter = A1111ImageBackend.from_settings(
        ImageSettings(api_url="http://127.0.0.1:7860/", model=CHECKPOINT, sampler="euler"),
        timeout_s=30,
    )
    assert painter.timeout_s == 30
    assert painter.identity.params == {"sampler": "Euler"}
    assert painter.identity.model == CHECKPOINT


def test_sdxl_api_url_sets_the_a1111_kind_and_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDXL_API_URL", "http://127.0.0.1:7860")
    image = load_settings().image
    assert (image.kind, image.api_url) == ("a1111", "http://127.0.0.1:7860")


@pytest.mark.slow
def test_a_whole_flyer_run_paints_with_the_a1111_server(
    prefect_env: str, monkeypatch: pytest.MonkeyPatch, restore_builders: None
) -> None:
    from flows.flyer import flyer

    registry.register("image", "a1111", lambda s: A1111ImageBackend.from_settings(s.image))
    with ScriptedA1111() as server:
        monkeypatch.setenv("SDXL_API_URL", server.url)
        monkeypatch.setenv("HYPERLOCAL_IMAGE__SAMPLER", "euler_a")
        monkeypatch.setenv("SDXL_STEPS", "20")
        brief = Brief(business="Rosie's", event="Sourdough class", place="12 Market St")
        outcome = flyer(brief=brief, variants=1, formats=["square"])
        sent = server.txt2img_requests
    assert sent
    assert sent[0].body["sampler_name"] == "Euler a"
    assert sent[0].body["steps"] == 20
    manifest = outcome.manifest
    assert manifest.backends["image"].kind == "a1111"
    assert manifest.backends["image"].params == {"sampler": "Euler a"}
    assert (outcome.folder / "variant_01_square.png").is_file()
    record = manifest.variants[0].formats[0]
    assert record.qc_passed is True
