"""Recording benchmark figures in bench/RESULTS.md, one section per benchmark."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine_line() -> str:
    """Return the date, machine and versions the figures were measured with."""
    import prefect
    import typst

    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, prefect {prefect.__version__}, "
        f"typst {getattr(typst, '__version__', '?')}"
    )


def record(title: str, lines: list[str]) -> None:
    """Replace (or add) the section called ``title`` in bench/RESULTS.md with ``lines``."""
    section = f"## {title}\n\n{machine_line()}\n\n" + "\n".join(lines) + "\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    start = text.find(f"## {title}")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if end < 0 else text[end + 1 :])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
