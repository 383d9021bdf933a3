"""The heuristic vision backend: a deterministic verdict from pixel statistics, no model.

It cannot tell what a picture shows, only whether it is usable as a flyer
background: not blank, not clipped to white or black, with structure outside
the text zone and calm inside it. Each check is measured on the luminance of a
reduced copy (long side 512 for sharp edges such as lettering, 128 for broad
structure, where film grain has averaged away), so a verdict takes a few
milliseconds. The default thresholds are calibrated so that every picture of the
builtin painter passes with room to spare while blank, clipped, noisy or
lettered pictures fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from backends.base import CheckRequest, Health
from backends.source_revision import module_revision
from backends.work_log import WorkLog
from hyperlocal.layout.formats import Zone
from hyperlocal.models import BackendIdentity, QCCheck, QCReport
from hyperlocal.pictures import decode_picture

# Checks are measured at this long side: enough for lettering, small enough to be quick.
_WORK_LONG_SIDE = 512
# Broad structure is measured at this long side, where film grain has averaged away.
_COARSE_LONG_SIDE = 128
# Below this share of the picture outside the zone there is nothing to compare the zone with.
_MIN_OUTSIDE_SHARE = 0.05
# Luminance at or beyond these levels counts as clipped to white or black.
_WHITE, _BLACK = 250.0, 5.0

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class Measure:
    """One measured value, its limit, and whether it must stay at least or at most the limit."""

    name: str
    value: float
    limit: float
    at_least: bool
    ok_text: str
    bad_text: str

    @property
    def passed(self) -> bool:
        """Whether the value keeps to its limit."""
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    @property
    def margin(self) -> float:
        """Distance from the limit as a share of it: positive inside, negative outside."""
        scale = max(abs(self.limit), 1e-9)
        gap = self.value - self.limit if self.at_least else self.limit - self.value
        return gap / scale

    def check(self) -> QCCheck:
        """Return the measure as the report's check, with the sentence that fits the outcome."""
        return QCCheck(
            name=self.name,
            passed=self.passed,
            value=round(self.value, 4),
            limit=self.limit,
            detail=self.ok_text if self.passed else self.bad_text,
        )


class HeuristicVision:
    """Checks pictures with pixel statistics: blank, clipped, dull, or a busy text zone."""

    def __init__(
        self,
        *,
        min_size: int = 64,
        min_contrast: float = 4.0,
        max_highlights: float = 0.12,
        max_shadows: float = 0.12,
        min_detail: float = 0.8,
        max_zone_edges: float = 0.005,
        max_zone_ratio: float = 0.6,
        edge_level: float = 20.0,
    ) -> None:
        """Build the checker with its thresholds (luminance levels 0-255, shares 0-1).

        ``min_contrast``: least standard deviation of luminance (blank pictures fail).
        ``max_highlights`` / ``max_shadows``: most share of pixels at 250+ / 5- luminance.
        ``min_detail``: least mean gradient (levels per pixel at long side 128) outside the zone.
        ``max_zone_edges``: most share of zone pixels whose gradient exceeds ``edge_level``
        (levels per pixel at long side 512). ``max_zone_ratio``: most ratio of the zone's mean
        gradient to the rest's. Raises ``ValueError`` for a threshold outside its range.
        """
        shares = {
            "max_highlights": max_highlights,
            "max_shadows": max_shadows,
            "max_zone_edges": max_zone_edges,
        }
        for name, share in shares.items():
            if not 0 <= share <= 1:
                raise ValueError(f"{name} must be a share between 0 and 1, not {share}")
        if min_size < 1:
            raise ValueError(f"min_size must be at least 1 pixel, not {min_size}")
        if min(min_contrast, min_detail, max_zone_ratio, edge_level) < 0:
            raise ValueError("contrast, detail, zone ratio and edge level must not be negative")
        self.min_size = min_size
        self.min_contrast = min_contrast
        self.max_highlights = max_highlights
        self.max_shadows = max_shadows
        self.min_detail = min_detail
        self.max_zone_edges = max_zone_edges
        self.max_zone_ratio = max_zone_ratio
        self.edge_level = edge_level
        self._identity = BackendIdentity(
            role="vision",
            kind="heuristic",
            model="pixel-statistics",
            revision=module_revision(__name__),
            params={
                "min_size": min_size,
                "min_contrast": min_contrast,
                "max_highlights": max_highlights,
                "max_shadows": max_shadows,
                "min_detail": min_detail,
                "max_zone_edges": max_zone_edges,
                "max_zone_ratio": max_zone_ratio,
                "edge_level": edge_level,
            },
        )

    @property
    def identity(self) -> BackendIdentity:
        """What judges: the pixel-statistics checker at this revision, with its thresholds."""
        return self._identity

    def health(self) -> Health:
        """Return that the checker is ready; it has no model to load and cannot be down."""
        return Health(
            role="vision",
            kind="heuristic",
            ok=True,
            detail="pixel-statistics checks ready (no model): blank, clipping, detail, text zone",
            models=["pixel-statistics"],
        )

    def check(self, request: CheckRequest, log: WorkLog | None = None) -> QCReport:
        """Return the verdict on the picture: one check per measure, a 1-10 score and reasons.

        Raises ``InvalidImage`` when the bytes do not decode as a picture.
        """
        luminance = _decode_luminance(request.image.png)
        measures = self.measure(luminance, request.text_zone)
        checks = [measure.check() for measure in measures]
        score = _score(measures)
        all_passed = all(check.passed for check in checks)
        reasons = [check.detail for check in checks if not check.passed]
        if all_passed and score < request.min_score:
            reasons.append(f"score {score:.1f} is below the minimum {request.min_score:g}")
        return QCReport(
            passed=all_passed and score >= request.min_score,
            score=score,
            checks=checks,
            reasons=reasons,
            backend=self._identity,
        )

    def measure(self, luminance: FloatArray, zone: Zone) -> list[Measure]:
        """Return the measures of a full-size luminance array (levels 0-255) and its text zone.

        A picture under ``min_size`` gets the size measure alone. Never raises.
        """
        height, width = luminance.shape
        size = Measure(
            name="size",
            value=float(min(width, height)),
            limit=float(self.min_size),
            at_least=True,
            ok_text=f"picture is {width}x{height} pixels",
            bad_text=(
                f"picture is too small: {width}x{height} pixels, at least "
                f"{self.min_size}x{self.min_size} needed"
            ),
        )
        if not size.passed:
            # Statistics of a handful of pixels mean nothing; the size alone decides.
            return [size]

        work = _reduce(luminance, _WORK_LONG_SIDE)
        coarse = _reduce(work, _COARSE_LONG_SIDE)
        contrast = float(work.std())
        highlights = float(np.mean(work >= _WHITE))
        shadows = float(np.mean(work <= _BLACK))

        fine_zone = _zone_mask(zone, work.shape)
        coarse_zone = _zone_mask(zone, coarse.shape)
        fine_gradient = _gradient(work)
        coarse_gradient = _gradient(coarse)
        has_outside = float(np.mean(~coarse_zone)) >= _MIN_OUTSIDE_SHARE
        outside = coarse_gradient[~coarse_zone] if has_outside else coarse_gradient.ravel()
        detail = float(outside.mean())
        zone_edges = float(np.mean(fine_gradient[fine_zone] > self.edge_level))
        zone_energy = float(coarse_gradient[coarse_zone].mean())
        # Half a level of slack keeps a flat picture (0 / 0) from reading as a busy zone.
        ratio = zone_energy / (detail + 0.5) if has_outside else 0.0

        return [
            size,
            Measure(
                name="contrast",
                value=contrast,
                limit=self.min_contrast,
                at_least=True,
                ok_text=f"luminance varies by {contrast:.1f} levels (standard deviation)",
                bad_text=(
                    f"picture is blank or nearly uniform: luminance varies by only "
                    f"{contrast:.1f} levels, at least {self.min_contrast:g} wanted"
                ),
            ),
            Measure(
                name="highlights",
                value=highlights,
                limit=self.max_highlights,
                at_least=False,
                ok_text=f"{highlights:.1%} of the picture is clipped to white",
                bad_text=(
                    f"highlights are clipped: {highlights:.0%} of the picture is pure white, "
                    f"at most {self.max_highlights:.0%} allowed"
                ),
            ),
            Measure(
                name="shadows",
                value=shadows,
                limit=self.max_shadows,
                at_least=False,
                ok_text=f"{shadows:.1%} of the picture is clipped to black",
                bad_text=(
                    f"shadows are clipped: {shadows:.0%} of the picture is pure black, "
                    f"at most {self.max_shadows:.0%} allowed"
                ),
            ),
            Measure(
                name="detail",
                value=detail,
                limit=self.min_detail,
                at_least=True,
                ok_text=f"detail outside the text zone: edge energy {detail:.2f}",
                bad_text=(
                    f"too little detail outside the text zone: edge energy {detail:.2f}, "
                    f"at least {self.min_detail:g} wanted"
                ),
            ),
            Measure(
                name="zone_edges",
                value=zone_edges,
                limit=self.max_zone_edges,
                at_least=False,
                ok_text=f"text zone is calm: {zone_edges:.2%} of it lies on edges",
                bad_text=(
                    f"text zone is busy: {zone_edges:.1%} of it lies on sharp edges "
                    f"(lettering, texture), at most {self.max_zone_edges:.1%} allowed"
                ),
            ),
            Measure(
                name="zone_ratio",
                value=ratio,
                limit=self.max_zone_ratio,
                at_least=False,
                ok_text=f"text zone carries {ratio:.0%} of the edge energy of the rest",
                bad_text=(
                    f"text zone is not calmer than the rest: it carries {ratio:.0%} of the "
                    f"edge energy outside it, at most {self.max_zone_ratio:.0%} allowed"
                ),
            ),
        ]


def _decode_luminance(png: bytes) -> FloatArray:
    """Return the picture's luminance (levels 0-255); raises ``InvalidImage`` if it won't decode."""
    # A decompression-bomb warning is about size, which the size check reports.
    return np.asarray(decode_picture(png, "L"), dtype=np.float32)


def _reduce(luminance: FloatArray, long_side: int) -> FloatArray:
    """Return ``luminance`` shrunk to at most ``long_side`` on its longer side."""
    height, width = luminance.shape
    scale = long_side / max(width, height)
    if scale >= 1:
        return luminance
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Box filtering averages whole source pixels: film grain fades, edges keep their contrast.
    reduced = Image.fromarray(luminance).resize(size, Image.Resampling.BOX)
    return np.asarray(reduced, dtype=np.float32)


def _gradient(luminance: FloatArray) -> FloatArray:
    """Return the gradient magnitude (levels per pixel) on the grid of forward differences."""
    height, width = luminance.shape
    if min(height, width) < 2:
        return np.zeros((max(1, height - 1), max(1, width - 1)), dtype=np.float32)
    across = np.diff(luminance, axis=1)[:-1, :]
    down = np.diff(luminance, axis=0)[:, :-1]
    return np.sqrt(across * across + down * down)


def _zone_mask(zone: Zone, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """Return which cells of the gradient grid of a picture of ``shape`` lie in ``zone``.

    The zone always holds at least one cell, even a sliver at the picture's very edge.
    """
    grid_h, grid_w = max(1, shape[0] - 1), max(1, shape[1] - 1)
    left, top, right, bottom = zone.pixels(grid_w, grid_h)
    left, top = min(left, grid_w - 1), min(top, grid_h - 1)
    mask = np.zeros((grid_h, grid_w), dtype=bool)
    mask[top : max(top + 1, bottom), left : max(left + 1, right)] = True
    return mask


def _score(measures: list[Measure]) -> float:
    """Return 1-10 from the margins: 10 when every check clears its limit by half of it."""
    qualities = [float(np.clip(0.5 + measure.margin, 0.0, 1.0)) for measure in measures]
    # The worst check weighs most: one bad flaw spoils a flyer however good the rest is.
    blended = 0.7 * min(qualities) + 0.3 * sum(qualities) / len(qualities)
    return round(1 + 9 * blended, 2)
