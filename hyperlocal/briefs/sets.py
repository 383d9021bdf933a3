"""Reading a set of briefs for a batch: a folder of brief files, a CSV, or a JSON list.

Every brief of the set is validated before any of them runs. A bad brief never
stops the others from loading: it becomes one ``BriefProblem`` line naming the
file, row or item and its bad fields. Only a set that cannot be read at all (no
such path, an unsupported file, a CSV header naming no brief field) raises
``BriefError``.

Sources are named so a user can find them again:

- a brief file: its path (``briefs/bakery.toml``);
- a CSV row: ``briefs.csv row N (line L)``; ``N`` counts data rows from 1 (the
  header is not a row), ``L`` is the file line the row starts on;
- a JSON list item: ``briefs.json item N``, counting from 1.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from hyperlocal.briefs.loading import BRIEF_SUFFIXES, load_brief, read_brief_text, validate_brief
from hyperlocal.errors import BriefError, ConfigurationError
from hyperlocal.models import BrandKit, Brief

#: A CSV holds many briefs: allow it more room than one brief file, still bounded.
MAX_SET_BYTES = 16 * 1024 * 1024
CSV_SUFFIXES = (".csv",)
#: Colour lists in one CSV cell: "#112233 #445566" or "#112233, #445566".
_LIST_SPLIT = re.compile(r"[\s,;]+")


class BriefItem(BaseModel):
    """One valid brief of a set, with where it came from."""

    model_config = ConfigDict(frozen=True)

    source: str
    brief: Brief
    #: The folder the brief's relative asset paths are read from (its file's folder).
    base_dir: Path


class BriefProblem(BaseModel):
    """One brief of a set that did not validate."""

    model_config = ConfigDict(frozen=True)

    source: str
    #: The whole one-line message, starting with the source.
    message: str


class BriefSet(BaseModel):
    """The briefs of a set: the valid ones in order, and one problem line per bad one."""

    path: Path
    items: list[BriefItem]
    problems: list[BriefProblem]

    @property
    def total(self) -> int:
        """How many briefs the set holds, good and bad."""
        return len(self.items) + len(self.problems)


def load_brief_set(path: Path, allowed_dirs: Iterable[Path] = ()) -> BriefSet:
    """Read and validate every brief in ``path``: a folder, a ``.csv`` or a JSON list.

    A folder contributes every ``*.toml``, ``*.yaml``, ``*.yml`` and ``*.json``
    file in it (not its subfolders, not hidden files), sorted by name; a JSON
    file there may hold one brief or a list. A single brief file is a set of one.
    Logos resolve relative to each brief's file, inside ``allowed_dirs``.

    Raises ``BriefError`` (one line) only when the set itself cannot be read;
    each bad brief is returned as a ``BriefProblem`` instead.
    """
    allowed = list(allowed_dirs)
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in BRIEF_SUFFIXES
        )
        if not files:
            raise BriefError(
                f"{path}: no brief files in this folder (looked for {', '.join(BRIEF_SUFFIXES)})"
            )
        items: list[BriefItem] = []
        problems: list[BriefProblem] = []
        for file in files:
            file_items, file_problems = _load_file(file, allowed)
            items += file_items
            problems += file_problems
        return _without_duplicates(path, items, problems)
    if not path.exists():
        raise BriefError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        items, problems = _load_csv(path, allowed)
    elif suffix in BRIEF_SUFFIXES:
        items, problems = _load_file(path, allowed)
    else:
        raise BriefError(
            f"{path}: a brief set must be a folder, a .csv file or a JSON list "
            f"(or one {', '.join(BRIEF_SUFFIXES)} brief)"
        )
    if not items and not problems:
        raise BriefError(f"{path}: holds no briefs")
    return _without_duplicates(path, items, problems)


def _problem(source: str, exc: ConfigurationError) -> BriefProblem:
    message = str(exc)
    # validate_brief and load_brief already start their lines with the source.
    if not message.startswith(source):
        message = f"{source}: {message}"
    return BriefProblem(source=source, message=message)


def _read_text(path: Path) -> str:
    """Return a brief set file's text: a regular file only, read to a bound (see
    ``read_brief_text``); a spreadsheet's byte-order mark dropped. Raises ``BriefError``."""
    return read_brief_text(path, MAX_SET_BYTES, "a brief set")


def _load_file(path: Path, allowed: list[Path]) -> tuple[list[BriefItem], list[BriefProblem]]:
    """Load one brief file, or the items of a JSON list; bad briefs become problems."""
    if path.suffix.lower() == ".json":
        listed = _json_list(path)
        if listed is not None:
            return _load_items(path, listed, allowed)
    try:
        brief = load_brief(path, allowed_dirs=allowed)
    except ConfigurationError as exc:  # BriefError or AssetError: this brief only
        return [], [_problem(str(path), exc)]
    return [BriefItem(source=str(path), brief=brief, base_dir=path.parent.resolve())], []


def _json_list(path: Path) -> list[Any] | None:
    """Return the list a JSON file holds, or None when it holds something else."""
    try:
        data = json.loads(_read_text(path))
    except (json.JSONDecodeError, BriefError, RecursionError):
        return None  # load_brief reports the same problem in one line
    return data if isinstance(data, list) else None


def _load_items(
    path: Path, data: list[Any], allowed: list[Path]
) -> tuple[list[BriefItem], list[BriefProblem]]:
    items: list[BriefItem] = []
    problems: list[BriefProblem] = []
    base_dir = path.parent.resolve()
    for number, entry in enumerate(data, start=1):
        source = f"{path} item {number}"
        if not isinstance(entry, dict):
            problems.append(
                BriefProblem(
                    source=source,
                    message=f"{source}: a brief must be an object of fields, "
                    f"not {type(entry).__name__}",
                )
            )
            continue
        try:
            brief = validate_brief(entry, source, base_dir, allowed)
        except ConfigurationError as exc:
            problems.append(_problem(source, exc))
            continue
        items.append(BriefItem(source=source, brief=brief, base_dir=base_dir))
    return items, problems


def _csv_columns(path: Path, header: list[str]) -> list[tuple[str, str | None]]:
    """Map each header cell to (brief field, brand field or None); raises on unknown names."""
    columns: list[tuple[str, str | None]] = []
    unknown: list[str] = []
    for cell in header:
        name = cell.strip()
        head, dot, rest = name.partition(".")
        if dot and head == "brand" and rest in BrandKit.model_fields:
            columns.append(("brand", rest))
        elif not dot and name in Brief.model_fields and name != "brand":
            columns.append((name, None))
        else:
            unknown.append(name or "(empty)")
    if unknown:
        allowed = [f for f in Brief.model_fields if f != "brand"]
        allowed += [f"brand.{f}" for f in BrandKit.model_fields]
        raise BriefError(
            f"{path}: unknown column{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)} (allowed: {', '.join(allowed)})"
        )
    seen: set[tuple[str, str | None]] = set()
    for column in columns:
        if column in seen:
            shown = ".".join(p for p in column if p)
            raise BriefError(f"{path}: column {shown!r} appears twice")
        seen.add(column)
    return columns


def _csv_row_data(columns: list[tuple[str, str | None]], row: list[str]) -> dict[str, Any]:
    """Turn one CSV row into brief data: empty cells are unset, colours are a list."""
    data: dict[str, Any] = {}
    brand: dict[str, Any] = {}
    for (field, brand_field), cell in zip(columns, row, strict=False):
        value = cell.strip()
        if not value:
            continue
        if brand_field is None:
            data[field] = value
        elif brand_field == "colors":
            brand["colors"] = [c for c in _LIST_SPLIT.split(value) if c]
        else:
            brand[brand_field] = value
    if brand:
        data["brand"] = brand
    return data


def _load_csv(path: Path, allowed: list[Path]) -> tuple[list[BriefItem], list[BriefProblem]]:
    text = _read_text(path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            raise BriefError(f"{path}: empty CSV; the first row must name the brief fields")
        columns = _csv_columns(path, header)
        rows: list[tuple[int, list[str]]] = []
        line = reader.line_num + 1
        for row in reader:
            rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise BriefError(f"{path}: not valid CSV: {exc}") from None
    items: list[BriefItem] = []
    problems: list[BriefProblem] = []
    base_dir = path.parent.resolve()
    number = 0
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue  # blank lines between rows are not briefs
        number += 1
        source = f"{path} row {number} (line {line})"
        if len(row) > len(columns):
            problems.append(
                BriefProblem(
                    source=source,
                    message=f"{source}: {len(row)} cells but only {len(columns)} columns; "
                    "quote cells that contain commas",
                )
            )
            continue
        try:
            brief = validate_brief(_csv_row_data(columns, row), source, base_dir, allowed)
        except ConfigurationError as exc:
            problems.append(_problem(source, exc))
            continue
        items.append(BriefItem(source=source, brief=brief, base_dir=base_dir))
    return items, problems


def _without_duplicates(
    path: Path, items: list[BriefItem], problems: list[BriefProblem]
) -> BriefSet:
    """Keep the first of identical briefs: a copy would only make the same flyers again."""
    first: dict[str, str] = {}
    kept: list[BriefItem] = []
    extra: list[BriefProblem] = []
    for item in items:
        key = item.brief.model_dump_json()
        if key in first:
            extra.append(
                BriefProblem(
                    source=item.source,
                    message=f"{item.source}: the same brief as {first[key]}; left out",
                )
            )
            continue
        first[key] = item.source
        kept.append(item)
    return BriefSet(path=path, items=kept, problems=problems + extra)
