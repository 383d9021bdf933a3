"""Settings: profiles, single overrides, earlier variable names, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperlocal.errors import SettingsError
from hyperlocal.settings import PROFILES, Settings, load_settings


def test_no_settings_gives_the_preview_profile() -> None:
    settings = load_settings()
    assert settings.profile == "preview"
    assert settings.variants == PROFILES["preview"].variants
    assert settings.formats == list(PROFILES["preview"].formats)
    assert settings.image.steps == PROFILES["preview"].steps
    assert settings.qc.enabled is True


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_profile_fills_its_bundle(name: str) -> None:
    settings = load_settings(profile=name)
    profile = PROFILES[name]
    assert settings.variants == profile.variants
    assert settings.image.steps == profile.steps
    assert settings.qc.max_attempts == profile.max_attempts
    assert settings.layout.print_ppi == profile.print_ppi


def test_a_single_setting_overrides_its_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLOCAL_PROFILE", "quality")
    monkeypatch.setenv("HYPERLOCAL_IMAGE__STEPS", "9")
    settings = load_settings()
    assert settings.image.steps == 9
    assert settings.variants == PROFILES["quality"].variants


def test_profile_given_on_the_command_line_keeps_user_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HYPERLOCAL_VARIANTS", "1")
    settings = load_settings(profile="quality")
    assert settings.variants == 1
    assert settings.image.steps == PROFILES["quality"].steps


@pytest.mark.parametrize(
    ("name", "value", "path", "expected"),
    [
        ("HYPERLOCAL_LLM_PROVIDER", "ollama", ("text", "provider"), "ollama"),
        ("HYPERLOCAL_LLM_BASE_URL", "http://127.0.0.1:9/v1", ("text", "base_url"), None),
        ("HYPERLOCAL_TEXT_BASE_URL", "http://127.0.0.1:8/v1", ("text", "base_url"), None),
        ("HYPERLOCAL_VISION_BASE_URL", "http://127.0.0.1:7/v1", ("vision", "base_url"), None),
        ("HYPERLOCAL_QC_ENABLED", "false", ("qc", "enabled"), False),
        ("HYPERLOCAL_IMAGE_SIZE", "768x1024", ("image", "size"), None),
        ("SDXL_API_URL", "http://127.0.0.1:7860", ("image", "api_url"), None),
        ("SDXL_STEPS", "12", ("image", "steps"), 12),
        ("SDXL_CFG_SCALE", "4.5", ("image", "cfg_scale"), 4.5),
    ],
)
def test_earlier_variable_names_still_work(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    path: tuple[str, str],
    expected: object,
) -> None:
    monkeypatch.setenv(name, value)
    section, field = path
    assert getattr(getattr(load_settings(), section), field) == (
        value if expected is None else expected
    )


def test_llm_provider_selects_the_openai_kind_and_its_preset_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HYPERLOCAL_LLM_PROVIDER", "vllm_mlx")
    settings = load_settings()
    assert settings.text.kind == "openai"
    assert settings.text.effective_base_url() == "http://127.0.0.1:8000/v1"


def test_new_names_win_over_earlier_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDXL_STEPS", "12")
    monkeypatch.setenv("HYPERLOCAL_IMAGE__STEPS", "5")
    assert load_settings().image.steps == 5


def test_text_base_url_wins_over_llm_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLOCAL_LLM_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("HYPERLOCAL_TEXT_BASE_URL", "http://127.0.0.1:2/v1")
    assert load_settings().text.base_url == "http://127.0.0.1:2/v1"


def test_a_bad_value_fails_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HYPERLOCAL_IMAGE__STEPS", "lots")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert "HYPERLOCAL_IMAGE__STEPS" in message
    assert "SDXL_STEPS" in message
    assert "'lots'" in message


def test_an_unknown_choice_lists_what_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLOCAL_PROFILE", "turbo")
    with pytest.raises(SettingsError, match="HYPERLOCAL_PROFILE: must be one of 'preview'"):
        load_settings()


def test_an_earlier_name_with_a_bad_value_is_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLOCAL_IMAGE_SIZE", "1000x1000x3")
    with pytest.raises(SettingsError, match="HYPERLOCAL_IMAGE_SIZE"):
        load_settings()


def test_sizes_must_be_multiples_of_eight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLOCAL_IMAGE__SIZE", "1001x1000")
    with pytest.raises(SettingsError, match="multiples of 8"):
        load_settings()


def test_settings_are_read_from_a_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "hyperlocal.toml"
    config.write_text('profile = "balanced"\n[image]\nsteps = 11\n[qc]\nmax_attempts = 1\n')
    monkeypatch.setenv("HYPERLOCAL_CONFIG", str(config))
    settings = load_settings()
    assert settings.profile == "balanced"
    assert settings.image.steps == 11
    assert settings.qc.max_attempts == 1
    assert settings.variants == PROFILES["balanced"].variants


def test_environment_wins_over_the_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "hyperlocal.toml"
    config.write_text("[image]\nsteps = 11\n")
    monkeypatch.setenv("HYPERLOCAL_CONFIG", str(config))
    monkeypatch.setenv("HYPERLOCAL_IMAGE__STEPS", "3")
    assert load_settings().image.steps == 3


def test_secrets_never_reach_the_public_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLOCAL_LLM_API_KEY", "sk-canary-123")
    settings = load_settings()
    assert settings.text.api_key is not None
    assert settings.text.api_key.get_secret_value() == "sk-canary-123"
    assert "sk-canary-123" not in str(settings.public_dict())
    assert "sk-canary-123" not in repr(settings)


def test_url_secrets_never_reach_the_public_settings_or_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Civitai link with its token, an A1111 login, a signed LoRA link.
    monkeypatch.setenv(
        "HYPERLOCAL_IMAGE__MODEL", "https://civitai.com/api/download/models/1?type=Model&token=TOK1"
    )
    monkeypatch.setenv("HYPERLOCAL_IMAGE__API_URL", "http://painter:PW2@127.0.0.1:7860")
    monkeypatch.setenv(
        "HYPERLOCAL_IMAGE__LORAS",
        '[{"path": "https://cdn.example/l.safetensors?X-Amz-Signature=SIG3&v=2"}]',
    )
    monkeypatch.setenv("HYPERLOCAL_VISION__BASE_URL", "http://127.0.0.1:8081/v1?api_key=KEY4")
    settings = load_settings()
    assert settings.image.model is not None
    assert settings.image.model.endswith("token=TOK1")  # the backends get the real URL
    shown = json.dumps(settings.public_dict()) + repr(settings)
    for canary in ("TOK1", "PW2", "SIG3", "KEY4"):
        assert canary not in shown
    public = settings.public_dict()
    assert public["image"]["model"] == (
        "https://civitai.com/api/download/models/1?type=Model&token=***"
    )
    assert public["image"]["api_url"] == "http://painter:***@127.0.0.1:7860"
    assert public["image"]["loras"][0]["path"] == (
        "https://cdn.example/l.safetensors?X-Amz-Signature=***&v=2"
    )
    # URLs without secrets are shown exactly as set.
    plain = Settings(text={"base_url": "http://127.0.0.1:8080/v1?x=1&y=two words"})
    assert plain.public_dict()["text"]["base_url"] == "http://127.0.0.1:8080/v1?x=1&y=two words"
