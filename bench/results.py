"""Recording benchmark figures in bench/RESULTS.md, one section per benchmark.

The file starts with a header block (``write_header``: the date, machine, Python
and key package versions of the last ``python -m bench`` run, and what it ran);
each benchmark replaces its own ``## `` section (``record``), which carries its
own ``machine_line``, since sections may be measured on different days.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import NoReturn

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# Benchmark results"
#: Distributions whose versions move the figures, in the order the header lists them.
KEY_PACKAGES = (
    "prefect",
    "typst",
    "torch",
    "diffusers",
    "transformers",
    "mlx",
    "mlx-lm",
    "mlx-vlm",
    "numpy",
)
#: Exit code of a benchmark that cannot run on this machine (automake's "skipped").
EXIT_SKIPPED = 77


def machine_line() -> str:
    """Return the date, machine and versions the figures were measured with."""
    import prefect
    import typst

    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, prefect {prefect.__version__}, "
        f"typst {getattr(typst, '__version__', '?')}"
    )


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str | None]:
    """Return each distribution's installed version, or None when it is not installed.

    Read from the installed metadata: importing torch or mlx just to ask costs seconds.
    """
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None  # not on every system (macOS has no SC_PHYS_PAGES in some builds)


def _gpus() -> str:
    if shutil.which("nvidia-smi") is None:
        return "none found (no nvidia-smi)"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "nvidia-smi did not answer"
    return "; ".join(line.strip() for line in out.splitlines() if line.strip()) or "none"


def machine_description() -> list[str]:
    """Return markdown list lines: machine, GPU, Python and key package versions."""
    memory = _memory_gib()
    memory_text = f", {memory:.1f} GiB memory" if memory is not None else ""
    versions = package_versions()
    installed = ", ".join(f"{name} {version}" for name, version in versions.items() if version)
    missing = ", ".join(name for name, version in versions.items() if version is None)
    lines = [
        f"- Machine: {platform.machine()}, {_cpu_model()}, {os.cpu_count()} cores"
        f"{memory_text}, {platform.platform()}",
        f"- GPU: {_gpus()}",
        f"- Python {platform.python_version()} ({sys.implementation.name})",
        f"- Packages: {installed}",
    ]
    if missing:
        lines.append(f"- Not installed: {missing}")
    return lines


def write_header(summary: list[str] | None = None, when: datetime | None = None) -> None:
    """Put the header block (date, machine, versions, ``summary``) at the top of RESULTS.md.

    Replaces whatever stood before the first ``## `` section; the sections stay.
    """
    when = when or datetime.now(UTC)
    header = [
        TITLE,
        "",
        f"Last `python -m bench` run: {when:%Y-%m-%d %H:%M} UTC",
        "",
        *machine_description(),
        "",
    ]
    if summary:
        header += [*summary, ""]
    header += [
        "Each section below names its command and the date, machine and versions it was "
        "measured with.",
        "",
    ]
    text = RESULTS.read_text() if RESULTS.exists() else ""
    start = text.find("## ") if text.startswith("## ") else text.find("\n## ")
    sections = "" if start < 0 else text[start:].lstrip("\n")
    RESULTS.write_text("\n".join(header) + ("\n" + sections if sections else ""))


def record(title: str, lines: list[str]) -> None:
    """Replace (or add) the section called ``title`` in bench/RESULTS.md with ``lines``."""
    section = f"## {title}\n\n{machine_line()}\n\n" + "\n".join(lines) + "\n"
    text = RESULTS.read_text() if RESULTS.exists() else f"{TITLE}\n\n"
    start = text.find(f"## {title}")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if end < 0 else text[end + 1 :])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def skip(reason: str) -> NoReturn:
    """End a benchmark that cannot run on this machine: ``python -m bench`` reports it skipped.

    Prints ``reason`` as the last line of stderr and exits with ``EXIT_SKIPPED``.
    """
    print(f"skipped: {reason}", file=sys.stderr)
    raise SystemExit(EXIT_SKIPPED)
