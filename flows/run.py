"""How one flyer run proceeds: the variants in parallel, each a chain of cached steps.

``FlyerRun`` is used inside the ``flyer`` flow: every step is submitted as a
Prefect task (so it is cached, retried and visible in the UI), and each
variant's chain runs in its own thread so a variant's render never waits for
another variant's pictures (DESIGN.md, "The flow for one brief").
"""

from __future__ import annotations

import contextvars
import hashlib
import secrets
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prefect import Task
from prefect.runtime import flow_run
from pydantic import BaseModel

from backends import registry
from backends.base import ArtRequest, CheckRequest, CopyRequest, ImageRequest
from backends.model_needs import ensure_models
from backends.registry import Role
from flows.model_workers import (
    ROLE_STEPS,
    configured_step,
    deferred_roles,
    wait_deferred,
    worker_step,
)
from flows.prefect_api import configured_api_url
from hyperlocal import __version__
from hyperlocal.errors import (
    InvalidImage,
    InvalidModelOutput,
    LayoutError,
    PassingFault,
    PictureRejected,
    StepCancelled,
    first_line,
)
from hyperlocal.layout.designs import design_for_variant, place_design
from hyperlocal.layout.fonts import font_library
from hyperlocal.layout.formats import FlyerFormat, Zone, get_format, sdxl_size_for
from hyperlocal.layout.typesetting import DEFAULT_TEMPLATE, template_digest
from hyperlocal.models import (
    AttemptRecord,
    BackendIdentity,
    Brief,
    CheckedPicture,
    DirectedArt,
    FlyerCopy,
    FormatRecord,
    GeneratedImage,
    ModelWork,
    QCReport,
    RenderedFlyer,
    RunManifest,
    StepRecord,
    VariantRecord,
    WrittenCopy,
)
from hyperlocal.settings import Settings
from hyperlocal.text import slugify
from tasks.caching import damaged_results, result_storage
from tasks.copywriting import write_copy
from tasks.images import generate_image
from tasks.layout import RenderRequest, file_digest, render_flyer
from tasks.log import step_logger
from tasks.model_work import cancel_run, work_of
from tasks.progress import ProgressEvent
from tasks.progress import notify as _notify
from tasks.prompts import direct_art, fit_prompt
from tasks.publishing import PublishedRun, flyer_file_name, publish
from tasks.qc import check_image

#: Which backend role each step calls: a step that ran (not cached) is a model call.
STEP_ROLES: dict[str, str] = {
    "write_copy": "text",
    "direct_art": "text",
    "generate_image": "image",
    "check_image": "vision",
}


@dataclass
class _VariantText:
    """Which settings a variant's text steps use: the model's, or the builtin's after a fallback."""

    settings: Settings
    fallbacks: list[str]
    fallen_back: bool = False


@dataclass(frozen=True)
class ChosenPicture:
    """The picture a format uses: which attempt gave it, every attempt, and the QC verdict."""

    image: GeneratedImage
    attempt: int
    attempts: list[AttemptRecord]
    #: None when QC was off or the picture shipped unchecked.
    passed: bool | None


def base_seed(settings: Settings, brief: Brief) -> int:
    """Return the run's base seed: set, drawn (-1), or derived from the brief (unset)."""
    seed = settings.image.seed
    if seed is None:
        digest = hashlib.sha256(brief.model_dump_json().encode()).digest()
        return int.from_bytes(digest[:4], "big") % 2**31
    if seed == -1:
        return secrets.randbelow(2**31)
    return seed


def attempt_seed(base: int, variant: int, attempt: int) -> int:
    """Return the seed of one picture: every variant and attempt differ, formats share it."""
    return (base + (variant - 1) * 1_000_003 + (attempt - 1) * 7_919) % 2**32


def picture_size(settings: Settings, aspect: float) -> tuple[int, int]:
    """Return the picture size for a picture box of ``aspect`` (width / height).

    The fixed size when set, else the SDXL-trained size nearest the aspect.
    """
    fixed = settings.image.fixed_size()
    if fixed is not None:
        return fixed
    return sdxl_size_for(aspect, settings.image.megapixels or 1.0)


class _Steps:
    """The run's tasks, configured from settings (storage, retries, --fresh), and which of
    them go to model workers."""

    def __init__(self, settings: Settings, fresh: bool, deferred: frozenset[Role]) -> None:
        #: Names of the steps handed to model workers (``Task.delay``), not run here.
        self.deferred = {step.name for role in deferred for step in ROLE_STEPS[role]}

        def configured(step: Task[..., Any]) -> Task[..., Any]:
            # A deferred step goes by the key a worker serves it under (fresh: its twin's).
            if step.name in self.deferred:
                return worker_step(step, settings, fresh)
            return configured_step(step, settings, fresh)

        self.write_copy = configured(write_copy)
        self.direct_art = configured(direct_art)
        self.generate_image = configured(generate_image)
        self.check_image = configured(check_image)
        self.fit_prompt = configured(fit_prompt)
        self.render_flyer = render_flyer.with_options(
            result_storage=result_storage(settings), refresh_cache=fresh or None
        )


class FlyerRun:
    """One brief through every step to a published run folder."""

    def __init__(
        self,
        brief: Brief,
        settings: Settings,
        fresh: bool = False,
        heading_font: str | None = None,
        body_font: str | None = None,
    ) -> None:
        self.brief = brief
        self.settings = settings
        # Roles whose models load in process go to model workers when any serve them.
        self.deferred = deferred_roles(settings, fresh, configured_api_url())
        self.steps = _Steps(settings, fresh, self.deferred)
        self.formats = [get_format(name) for name in settings.formats or []]
        fonts = font_library(settings.layout.font_dirs)
        self.heading_font = fonts.resolve(
            heading_font or brief.brand.heading_font or settings.layout.heading_font
        )
        self.body_font = fonts.resolve(
            body_font or brief.brand.body_font or settings.layout.body_font
        )
        self.fonts_digest = fonts.extra_digest()
        # With models.allow_pull the missing models are fetched first; never otherwise.
        ensure_models(settings, say=step_logger().info)
        # Build every backend now: a configuration error stops the run before any work.
        # (Models load lazily, on first use; model workers build their own.)
        self.backends: dict[str, BackendIdentity] = {
            role: backend.identity
            for role, backend in registry.build_run_backends(settings, skip=self.deferred).items()
        }
        if self.deferred:
            step_logger().info(
                "the %s steps run on model workers (python -m flows.workers)",
                " and ".join(sorted(self.deferred)),
            )
        self.seed = base_seed(settings, brief)
        self.template = (settings.layout.template or DEFAULT_TEMPLATE).resolve()
        if not self.template.is_file():
            raise LayoutError(
                f"template {self.template} not found; fix HYPERLOCAL_LAYOUT__TEMPLATE"
            )
        self.template_digest = template_digest(self.template)
        logo = brief.brand.logo
        self.logo_digest = file_digest(logo) if logo is not None else None
        self._records: list[StepRecord] = []
        self._lock = threading.Lock()
        self._run_id = str(flow_run.id or "")
        self._cancelled = False

    def _step(
        self,
        task: Task[..., Any],
        *args: Any,
        variant: int | None = None,
        format_name: str | None = None,
        attempt: int | None = None,
        defer: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Run one step (here, or on a model worker unless ``defer`` is False); return its
        value and record it. Raises the step's fault after its retries."""
        name = task.name
        if self._cancelled:
            raise StepCancelled(f"{name} not started: the run failed elsewhere")
        _notify(
            ProgressEvent(
                variant=variant, format=format_name, step=name, state="started", attempt=attempt
            )
        )
        started = time.perf_counter()
        on_worker = defer and name in self.steps.deferred
        try:
            if on_worker:
                future: Any = task.delay(*args, **kwargs)
                value = wait_deferred(future, lambda: self._cancelled)
            else:
                future = task.submit(*args, **kwargs)
                value = future.result()
        except Exception as exc:
            # Kept in the manifest when the run goes on without this result (its model
            # requests count); a fault that ends the run leaves no manifest anyway.
            self._record(
                name,
                variant,
                format_name,
                attempt,
                False,
                started,
                str(exc),
                work_of(exc),
                on_worker=on_worker,
            )
            raise
        cached = future.state.name == "Cached"
        work = value.work if isinstance(value, WrittenCopy | DirectedArt | CheckedPicture) else None
        if on_worker:
            self._note_backend(value)
        self._record(
            name, variant, format_name, attempt, cached, started, work=work, on_worker=on_worker
        )
        _notify(
            ProgressEvent(
                variant=variant,
                format=format_name,
                step=name,
                state="finished",
                cached=cached,
                attempt=attempt,
            )
        )
        return value

    def _note_backend(self, value: Any) -> None:
        """Keep the backend behind a result of a step that ran on a model worker.

        The run never builds those backends itself; the manifest names them from
        their results (the first one of each role).
        """
        identity: BackendIdentity | None = None
        if isinstance(value, WrittenCopy | DirectedArt | GeneratedImage):
            identity = value.backend
        elif isinstance(value, CheckedPicture):
            identity = value.report.backend
        if identity is not None and identity.role in self.deferred:
            with self._lock:
                self.backends.setdefault(identity.role, identity)

    def _record(
        self,
        step: str,
        variant: int | None,
        format_name: str | None,
        attempt: int | None,
        cached: bool,
        started: float,
        error: str | None = None,
        work: ModelWork | None = None,
        on_worker: bool = False,
    ) -> None:
        record = StepRecord(
            step=step,
            variant=variant,
            format=format_name,
            attempt=attempt,
            cached=cached,
            seconds=round(time.perf_counter() - started, 4),
            error=error,
            work=work,
            on_worker=on_worker,
        )
        with self._lock:
            self._records.append(record)

    def _text_step(
        self, task: Task[..., Any], request: BaseModel, variant: int, text: _VariantText
    ) -> Any:
        """Run a text step; with ``on_invalid_output = "builtin"``, fall back on bad output.

        Once the model has failed a variant, the builtin copywriter writes the rest of
        that variant too: the model is not asked again for a variant it has failed.
        """
        if not text.fallen_back:
            try:
                return self._step(task, request, text.settings, variant=variant)
            except InvalidModelOutput as exc:
                if self.settings.text.on_invalid_output != "builtin":
                    raise
                self._fall_back(task, variant, text, exc)
        # The builtin copywriter loads no model: its steps never go to a model worker.
        return self._step(task, request, text.settings, variant=variant, defer=False)

    def _fall_back(
        self, task: Task[..., Any], variant: int, text: _VariantText, exc: InvalidModelOutput
    ) -> None:
        """Hand the rest of a variant's text steps to the builtin copywriter, and say so."""
        text.fallbacks.append(f"{task.name}: {exc}")
        text.settings = self.settings.with_overrides(text__kind="builtin")
        text.fallen_back = True
        step_logger().warning(
            "variant %d: the builtin copywriter takes over from %s (%s)",
            variant,
            task.name,
            exc,
        )

    def _picture(
        self,
        variant: int,
        fmt: FlyerFormat,
        calm_zone: Zone,
        request_base: dict[str, Any],
        subject: str,
    ) -> ChosenPicture:
        settings = self.settings
        attempts: list[AttemptRecord] = []
        tried: list[tuple[int, GeneratedImage, QCReport | None]] = []
        unusable: InvalidImage | None = None
        # A picture that failed QC, or that was not a usable picture at all, is painted
        # again with the next seed; without QC only unusable pictures are repainted.
        max_attempts = settings.qc.max_attempts or 1
        for attempt in range(1, max_attempts + 1):
            seed = attempt_seed(self.seed, variant, attempt)
            request = ImageRequest(seed=seed, attempt=attempt, **request_base)
            try:
                image: GeneratedImage = self._step(
                    self.steps.generate_image,
                    request,
                    settings,
                    variant=variant,
                    format_name=fmt.name,
                    attempt=attempt,
                )
            except InvalidImage as exc:
                unusable = exc
                step_logger().warning(
                    "variant %d %s, attempt %d (seed %d): %s; painting again",
                    variant,
                    fmt.name,
                    attempt,
                    seed,
                    exc,
                )
                attempts.append(
                    AttemptRecord(
                        attempt=attempt,
                        seed=seed,
                        width=request.width,
                        height=request.height,
                        image_error=str(exc),
                    )
                )
                continue
            report: QCReport | None = None
            if settings.qc.enabled:
                check = CheckRequest(
                    image=image,
                    text_zone=calm_zone,
                    subject=subject,
                    min_score=settings.qc.min_score,
                )
                try:
                    checked: CheckedPicture = self._step(
                        self.steps.check_image,
                        check,
                        settings,
                        variant=variant,
                        format_name=fmt.name,
                        attempt=attempt,
                    )
                    report = checked.report
                except (PassingFault, InvalidModelOutput) as exc:
                    # Down after its retries, or no valid verdict after its re-asks.
                    if settings.qc.on_unavailable == "fail":
                        raise
                    # qc.on_unavailable = "warn": ship it unchecked, and say so.
                    attempts.append(
                        AttemptRecord(
                            attempt=attempt,
                            seed=image.seed,
                            width=image.width,
                            height=image.height,
                            qc_error=str(exc),
                        )
                    )
                    return ChosenPicture(image, attempt, attempts, None)
            attempts.append(
                AttemptRecord(
                    attempt=attempt,
                    seed=image.seed,
                    width=image.width,
                    height=image.height,
                    qc=report,
                )
            )
            tried.append((attempt, image, report))
            if report is None:
                return ChosenPicture(image, attempt, attempts, None)
            if report.passed:
                return ChosenPicture(image, attempt, attempts, True)
        if not tried:
            raise InvalidImage(
                f"variant {variant} {fmt.name}: none of {max_attempts} pictures was usable "
                f"(last: {unusable}); check the image backend's output"
            )
        if settings.qc.on_exhausted == "fail":
            last_report = tried[-1][2]
            reasons = "; ".join(last_report.reasons) if last_report else "unknown"
            raise PictureRejected(
                f"variant {variant} {fmt.name}: all {len(tried)} pictures failed QC "
                f"(last: {reasons}); raise HYPERLOCAL_QC__MAX_ATTEMPTS or set "
                "HYPERLOCAL_QC__ON_EXHAUSTED=best"
            )
        best, best_image, _ = max(tried, key=lambda tried: tried[2].score if tried[2] else 0.0)
        return ChosenPicture(best_image, best, attempts, False)

    def _variant(self, variant: int, total: int) -> tuple[VariantRecord, list[RenderedFlyer]]:
        settings = self.settings
        text = _VariantText(settings=settings, fallbacks=[])
        written: WrittenCopy = self._text_step(
            self.steps.write_copy,
            CopyRequest(brief=self.brief, variant=variant, variants=total),
            variant,
            text,
        )
        copy: FlyerCopy = written.copy_
        directed: DirectedArt = self._text_step(
            self.steps.direct_art,
            ArtRequest(brief=self.brief, copy=copy, variant=variant),
            variant,
            text,
        )
        art = directed.art
        subject = next((p.text for p in art.phrases if p.role == "subject"), art.phrases[0].text)
        records: list[FormatRecord] = []
        flyers: list[RenderedFlyer] = []
        design = design_for_variant(variant, settings.layout.designs)
        for fmt in self.formats:
            placed = place_design(fmt, design)
            fitted = self._step(
                self.steps.fit_prompt,
                art,
                placed.calm_zone,
                settings.image.long_prompts,
                settings.image.max_chunks,
                settings,
                variant=variant,
                format_name=fmt.name,
            )
            width, height = picture_size(settings, placed.picture_aspect(fmt))
            picture = self._picture(
                variant,
                fmt,
                placed.calm_zone,
                {
                    "prompt": fitted,
                    "width": width,
                    "height": height,
                    "steps": settings.image.steps or 1,
                    "cfg_scale": settings.image.cfg_scale or 0.0,
                    "palette": list(self.brief.brand.colors),
                    "text_zone": placed.calm_zone,
                },
                subject,
            )
            flyer: RenderedFlyer = self._step(
                self.steps.render_flyer,
                RenderRequest(
                    variant=variant,
                    format=fmt.name,
                    copy=copy,
                    brief=self.brief,
                    background=picture.image,
                    heading_font=self.heading_font,
                    body_font=self.body_font,
                    font_dirs=settings.layout.font_dirs,
                    fonts_digest=self.fonts_digest,
                    print_ppi=settings.layout.print_ppi or 150,
                    template=self.template,
                    template_digest=self.template_digest,
                    logo_digest=self.logo_digest,
                    design=placed.design,
                    bleed=settings.layout.print or settings.layout.crop_marks,
                    crop_marks=settings.layout.crop_marks,
                ),
                variant=variant,
                format_name=fmt.name,
            )
            flyers.append(flyer)
            records.append(
                FormatRecord(
                    **flyer.layout_fields(),
                    prompt=fitted,
                    attempts=picture.attempts,
                    chosen_attempt=picture.attempt,
                    qc_passed=picture.passed,
                    files=[flyer_file_name(variant, fmt.name, kind) for kind in fmt.outputs],
                )
            )
        record = VariantRecord(
            variant=variant,
            copy=copy,
            art_direction=art,
            formats=records,
            text_fallbacks=text.fallbacks,
            copy_writer=written.work.writer,
            art_writer=directed.work.writer,
        )
        return record, flyers

    def _cancel(self, fault: BaseException) -> None:
        """Stop the model steps still running for this run; they have no use any more."""
        self._cancelled = True
        if self._run_id:
            cancel_run(self._run_id)
        step_logger().error(
            "the run failed (%s); stopping the steps still in flight", first_line(fault)
        )

    def execute(self) -> PublishedRun:
        """Run every variant, publish the run folder and return where it is.

        Raises the first fault of any step after its retries.
        """
        started = time.perf_counter()
        created = datetime.now(UTC)
        total = self.settings.variants or 1
        workers = max(1, min(self.settings.max_parallel, total))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="variant")
        damaged: list[str] = []
        collecting = damaged_results.set(damaged)
        try:
            futures = [
                pool.submit(contextvars.copy_context().run, self._variant, v, total)
                for v in range(1, total + 1)
            ]
            # The first variant to fail ends the run at once: waiting for the others
            # would keep a failed run silent for as long as their models write.
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and f.exception()), None)
            fault = failed.exception() if failed is not None else None
            if fault is not None:
                self._cancel(fault)
                raise fault
            results = [f.result() for f in futures]
        except BaseException:
            # Interrupted or failed: start no more variants; the steps already running
            # finish (and are cached), so the next run resumes from there.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            damaged_results.reset(collecting)
        pool.shutdown()
        variants = [record for record, _ in results]
        flyers = [flyer for _, batch in results for flyer in batch]
        with self._lock:
            # Stable sort: within a variant, steps stay in the order they ran.
            steps = sorted(self._records, key=lambda r: r.variant or 0)
        model_calls = {role: 0 for role in registry.run_roles(self.settings)}
        for record in steps:
            role = STEP_ROLES.get(record.step)
            if role in model_calls and not record.cached:
                # A model step counts the requests it sent (re-asks too); a builtin step
                # and the painting step count one call each.
                model_calls[role] += (record.work.requests if record.work else 0) or 1
        slug = slugify(f"{self.brief.business} {self.brief.event}")
        manifest = RunManifest(
            hyperlocal_version=__version__,
            run_name=f"{created:%Y%m%d-%H%M%S}-{slug}",
            created_at=created,
            profile=self.settings.profile,
            settings=self.settings.public_dict(),
            brief=self.brief,
            backends=self.backends,
            variants=variants,
            steps=steps,
            model_calls=model_calls,
            cached_steps=sum(r.cached for r in steps),
            computed_steps=sum(not r.cached for r in steps),
            damaged_cache=sorted(damaged),
            files=[],
            seconds=round(time.perf_counter() - started, 3),
        )
        _notify(ProgressEvent(variant=None, format=None, step="publish", state="started"))
        published: PublishedRun = publish(self.settings.output_dir / "flyer_runs", flyers, manifest)
        _notify(ProgressEvent(variant=None, format=None, step="publish", state="finished"))
        return published
