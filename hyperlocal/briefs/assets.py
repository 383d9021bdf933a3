"""Asset paths a brief may name (logo, fonts), kept inside the allowed folders.

A brief comes from a user, a form in the UI or a batch file: its paths must not
reach files outside the brief's own folder and the configured asset folders,
whether through ``..``, an absolute path or a symlink that points elsewhere. A
raster picture among them (a logo) must be a picture whose header names at most
``MAX_LOGO_PIXELS``: the renderer decodes every pixel of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hyperlocal.errors import AssetError, InvalidImage
from hyperlocal.pictures import MAX_LOGO_PIXELS, check_pixels, picture_file_header

#: Pictures whose pixels are decoded (an SVG is drawn as vectors, at the flyer's size).
RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})


def resolve_asset(
    path: Path,
    base_dir: Path | None,
    allowed_dirs: Iterable[Path],
    max_pixels: int = MAX_LOGO_PIXELS,
    what: str = "a logo",
) -> Path:
    """Return the real path of ``path`` if it is an existing file inside an allowed folder.

    Relative paths are read from ``base_dir`` (the brief's folder) or, without one,
    from each allowed folder in turn. Symlinks are followed before the check, so
    a link pointing outside is refused. A PNG or JPEG must be a picture of at most
    ``max_pixels`` (read from its header, nothing decoded; ``what`` names it in
    the error). Raises ``AssetError`` otherwise.
    """
    try:
        real = _resolve_asset(path, base_dir, allowed_dirs)
    except (OSError, ValueError) as exc:
        # A NUL byte, a name too long for the file system, a loop of links.
        raise AssetError(f"{str(path)[:80]!r} is not a usable file name ({exc})") from None
    if real.suffix.lower() in RASTER_SUFFIXES:
        try:
            _, size = picture_file_header(real)
        except InvalidImage as exc:
            raise AssetError(f"{path} is {exc}") from None
        except OSError as exc:
            raise AssetError(f"{path} cannot be read ({exc})") from None
        try:
            check_pixels(size, max_pixels, what)
        except InvalidImage as exc:
            raise AssetError(str(exc)) from None
    return real


def _resolve_asset(path: Path, base_dir: Path | None, allowed_dirs: Iterable[Path]) -> Path:
    roots = [p.resolve() for p in allowed_dirs]
    if base_dir is not None:
        roots.insert(0, base_dir.resolve())
    if path.is_absolute():
        candidates = [path]
    elif base_dir is not None:
        candidates = [base_dir / path]
    else:
        candidates = [root / path for root in roots]
    shown_roots = ", ".join(str(r) for r in roots) or "(none)"
    for candidate in candidates:
        real = candidate.resolve()
        if not any(real.is_relative_to(root) for root in roots):
            raise AssetError(
                f"{path} is outside the allowed folders ({shown_roots}); "
                "copy it into the brief's folder or add its folder to HYPERLOCAL_ASSET_DIRS"
            )
        if real.is_file():
            return real
    raise AssetError(f"{path} not found (looked in {shown_roots})")
