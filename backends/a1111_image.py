"""The image backend for AUTOMATIC1111-compatible servers (A1111, Forge, SD.Next).

Speaks ``POST {api_url}/sdapi/v1/txt2img``, ``GET /sdapi/v1/sd-models`` and
``GET /sdapi/v1/options`` with httpx, like the OpenAI text backend: exact
timeouts and an exact mapping of every HTTP status onto the fault tree.

The server parses A1111 emphasis ``(text:1.2)`` and ``BREAK`` chunks itself, so
prompts are fitted for that syntax and sent as they are. The checkpoint is
chosen per request with ``override_settings`` and restored afterwards, so a
shared server is left as it was found. A user and password in the URL become
HTTP Basic auth (A1111's ``--api-auth``) and never appear in messages or in the
identity.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

import httpx

from backends.base import Health, ImageRequest
from backends.http_deadline import refused, send_or_fault, status_fault
from backends.structured_output import one_line
from hyperlocal.errors import (
    ConfigurationError,
    HyperlocalError,
    InvalidImage,
)
from hyperlocal.models import BackendIdentity, GeneratedImage, PromptSyntax
from hyperlocal.pictures import MAX_BACKGROUND_PIXELS, picture_header
from hyperlocal.prompts.clip_tokens import TokenCounter, clip_counter
from hyperlocal.settings import ImageSettings

#: Connecting never needs long: a refused or unroutable server should fail fast.
CONNECT_TIMEOUT_S = 10.0
DEFAULT_TIMEOUT_S = 300.0
TXT2IMG = "/sdapi/v1/txt2img"
SD_MODELS = "/sdapi/v1/sd-models"
OPTIONS = "/sdapi/v1/options"
#: Our sampler names (as diffusers schedulers are named) and A1111's display names.
SAMPLERS: dict[str, str] = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_karras": "DPM++ 2M Karras",
    "lcm": "LCM",
}
_API_HINT = "is the server started with --api?"
_AUTH_HINT = (
    "the server refused the credentials: put user:password in HYPERLOCAL_IMAGE__API_URL "
    "(http://user:password@host:7860) to match the server's --api-auth"
)
_DATA_URI_PREFIX = "data:image/png;base64,"


def _public_url(url: str) -> str:
    """Return ``url`` without user and password, safe for messages and logs."""
    parsed = httpx.URL(url)
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    return str(parsed).rstrip("/")


def a1111_sampler(name: str | None) -> str | None:
    """Return A1111's name for our sampler ``name``; other names pass through unchanged."""
    if name is None:
        return None
    return SAMPLERS.get(name.strip().lower(), name)


def decode_png(data: str, width: int, height: int) -> bytes:
    """Return PNG bytes from base64 ``data`` (a data URI prefix allowed).

    Raises ``InvalidImage`` unless the bytes are a PNG of exactly ``width`` x ``height``
    (a picture of more than ``MAX_BACKGROUND_PIXELS`` is refused from its header alone).
    """
    # Some proxies wrap long base64 lines; whitespace carries nothing.
    text = "".join(data.split())
    if text.startswith("data:"):
        if not text.startswith(_DATA_URI_PREFIX):
            raise InvalidImage(f"the image server sent {text[:30]!r}..., not a PNG data URI")
        text = text[len(_DATA_URI_PREFIX) :]
    try:
        png = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("the image server sent a picture that is not valid base64") from None
    # The header's size is held to the largest request before a byte of it is decoded.
    found_format, size = picture_header(
        png, "the image server sent", max_pixels=MAX_BACKGROUND_PIXELS
    )
    if found_format != "PNG":
        raise InvalidImage(
            f"the image server sent {found_format}, not PNG: set the server's image format to png"
        )
    if size == (1, 1):
        # What a failed or filtered generation leaves behind on some servers and extensions.
        raise InvalidImage(
            "the image server sent a 1x1 placeholder picture: its generation failed or was "
            "filtered (see the server's console)"
        )
    if size != (width, height):
        raise InvalidImage(
            f"the image server sent {size[0]}x{size[1]}, not the requested {width}x{height} "
            "(an upscaler or hires fix on the server?)"
        )
    return png


def _seed_used(info: Any, fallback: int) -> int:
    """Return ``all_seeds[0]`` (else ``seed``) from the answer's ``info`` JSON string."""
    try:
        data = json.loads(info) if isinstance(info, str) else info
    except ValueError:
        return fallback
    if not isinstance(data, dict):
        return fallback
    seeds = data.get("all_seeds")
    candidates = [seeds[0] if isinstance(seeds, list) and seeds else None, data.get("seed")]
    for value in candidates:
        # bool is an int subclass; a seed is never one.
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return fallback


class A1111ImageBackend:
    """Background pictures from an AUTOMATIC1111-compatible server, over httpx.

    One ``httpx.Client`` serves every thread; the server queues concurrent requests.
    """

    def __init__(
        self,
        api_url: str,
        *,
        checkpoint: str | None = None,
        sampler: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Prepare a client for ``api_url``; no request is made until one is needed."""
        self._api_url = api_url.rstrip("/")
        self._public_url = _public_url(self._api_url)
        # Kept only to scrub it from unexpected exception texts that might echo the URL.
        self._secret = httpx.URL(self._api_url).password or None
        self.checkpoint = checkpoint or None
        self.sampler = a1111_sampler(sampler)
        self.timeout_s = timeout_s
        # httpx turns the URL's user:password into Basic auth, which is what --api-auth wants.
        self._client = httpx.Client(
            base_url=self._api_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            transport=transport,
        )
        params: dict[str, str | int | float | bool | None] = {"sampler": self.sampler}
        self._identity = BackendIdentity(
            role="image", kind="a1111", model=self.checkpoint or "server default", params=params
        )

    @classmethod
    def from_settings(
        cls, image: ImageSettings, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> A1111ImageBackend:
        """Build the backend from ``settings.image``; raises ``ConfigurationError`` with no URL."""
        if not image.api_url:
            raise ConfigurationError(
                "the a1111 image kind needs a server: set HYPERLOCAL_IMAGE__API_URL "
                "(or SDXL_API_URL), e.g. http://127.0.0.1:7860"
            )
        return cls(
            image.api_url, checkpoint=image.model, sampler=image.sampler, timeout_s=timeout_s
        )

    def __repr__(self) -> str:
        return f"A1111ImageBackend(url={self._public_url!r}, checkpoint={self.checkpoint!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    @property
    def identity(self) -> BackendIdentity:
        """Kind, checkpoint and sampler; steps, cfg, size and seed are in the request."""
        return self._identity

    @property
    def prompt_syntax(self) -> PromptSyntax:
        """One prompt with A1111 emphasis ``(text:1.2)`` and ``BREAK`` chunks."""
        return PromptSyntax(encoders=1, weights="a1111", chunks="a1111")

    def token_counters(self) -> list[TokenCounter]:
        """Count with the real CLIP BPE: the server's tokenizer is not reachable from here."""
        return [clip_counter()]

    # -- painting -------------------------------------------------------------------------

    def payload(self, request: ImageRequest) -> dict[str, Any]:
        """Return the txt2img JSON body for ``request``.

        Raises ``ConfigurationError`` when a side is not a multiple of 8 (the latent grid).
        """
        if request.width % 8 or request.height % 8:
            raise ConfigurationError(
                f"the a1111 image kind needs sides that are multiples of 8, not "
                f"{request.width}x{request.height}: set HYPERLOCAL_IMAGE__SIZE or "
                "HYPERLOCAL_IMAGE__MEGAPIXELS"
            )
        body: dict[str, Any] = {
            "prompt": request.prompt.prompt,
            "negative_prompt": request.prompt.negative_prompt,
            "seed": request.seed,
            "steps": request.steps,
            "cfg_scale": request.cfg_scale,
            "width": request.width,
            "height": request.height,
            "batch_size": 1,
            "n_iter": 1,
            # Ask for the bare picture: no grid, no saving on the server's disk.
            "send_images": True,
            "save_images": False,
        }
        if self.sampler:
            body["sampler_name"] = self.sampler
        if self.checkpoint:
            body["override_settings"] = {"sd_model_checkpoint": self.checkpoint}
            # A shared server keeps its own checkpoint for its other users.
            body["override_settings_restore_afterwards"] = True
        return body

    def generate(self, request: ImageRequest) -> GeneratedImage:
        """Return one PNG of the requested size, with the seed the server used.

        Raises ``PassingFault`` (server down, slow or busy), ``InvalidImage`` (not a
        PNG of that size) or ``ConfigurationError`` (bad size, no --api, refused).
        """
        body = self.payload(request)
        response = self._send("POST", TXT2IMG, json=body)
        if response.status_code != 200:
            raise self._fault(response, TXT2IMG)
        try:
            answer = response.json()
        except ValueError:
            raise InvalidImage(
                f"the image server's answer is not JSON: {one_line(response.text, 80)!r}"
            ) from None
        images = answer.get("images") if isinstance(answer, dict) else None
        if not isinstance(images, list) or not images or not isinstance(images[0], str):
            raise InvalidImage("the image server's answer has no images[0]")
        png = decode_png(images[0], request.width, request.height)
        return GeneratedImage(
            png=png,
            width=request.width,
            height=request.height,
            seed=_seed_used(answer.get("info"), request.seed),
            attempt=request.attempt,
            backend=self._identity,
        )

    # -- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        """Say whether the server answers, its checkpoints and the current one; never raises."""
        try:
            return self._health()
        except Exception as exc:  # a health check reports, it never takes the caller down
            text = f"{self._public_url}: unexpected {type(exc).__name__}: {exc}"
            return self._unwell(text.replace(self._secret, "***") if self._secret else text)

    def _unwell(self, detail: str, models: list[str] | None = None) -> Health:
        return Health(role="image", kind="a1111", ok=False, detail=detail, models=models or [])

    def _health(self) -> Health:
        started = time.monotonic()
        try:
            response = self._send("GET", SD_MODELS)
            if response.status_code != 200:
                raise self._fault(response, SD_MODELS)
        except HyperlocalError as exc:
            return self._unwell(str(exc))
        latency = time.monotonic() - started
        listed = response.json() if _is_json(response) else []
        entries = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
        models = [str(m.get("title") or m.get("model_name")) for m in entries]
        current = self._current_checkpoint()
        detail = f"{self._public_url}: current checkpoint {current or 'unknown'}"
        if self.checkpoint:
            names = {str(m.get(k)) for m in entries for k in ("title", "model_name", "hash")}
            names |= {
                str(m.get("filename", "")).replace("\\", "/").rsplit("/", 1)[-1] for m in entries
            }
            if self.checkpoint not in names:
                return self._unwell(
                    f"{detail}; checkpoint {self.checkpoint!r} is not among the server's "
                    f"{len(models)}: set HYPERLOCAL_IMAGE__MODEL to one of them",
                    models,
                )
            detail += f"; configured {self.checkpoint!r} listed"
        return Health(
            role="image",
            kind="a1111",
            ok=True,
            detail=f"{detail}; {len(models)} checkpoints",
            models=models,
            latency_s=latency,
        )

    def _current_checkpoint(self) -> str | None:
        """Return the server's loaded checkpoint, or None where options are not offered."""
        try:
            response = self._send("GET", OPTIONS)
        except HyperlocalError:
            return None
        if response.status_code != 200 or not _is_json(response):
            return None
        options = response.json()
        current = options.get("sd_model_checkpoint") if isinstance(options, dict) else None
        return str(current) if current else None

    # -- HTTP -----------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; transport failures become passing faults (``send_or_fault``)."""
        return send_or_fault(
            self._client,
            method,
            path,
            self.timeout_s,
            where=f"{self._public_url}{path}",
            slow_hint="the server may be busy or too slow for this size and step count "
            "(HYPERLOCAL_IMAGE__TIMEOUT_S)",
            **kwargs,
        )

    def _fault(self, response: httpx.Response, path: str) -> HyperlocalError:
        """Return the fault for a non-200 answer (the caller raises it)."""
        status = response.status_code
        where = f"{self._public_url}{path}"
        message = _server_message(response)
        if self._secret:
            # A server or proxy may echo the request's credentials in its error.
            message = message.replace(self._secret, "***")
        common = status_fault(status, where, message, _AUTH_HINT)
        if common is not None:
            return common
        if status == 404:
            # FastAPI's own 404 says "Not Found": the route is missing. A1111 also answers 404
            # with its own detail, e.g. "Sampler not found".
            if message.strip().lower() in ("not found", f"http {status}", ""):
                return ConfigurationError(f"{where} not found: {_API_HINT}")
            hint = "; set HYPERLOCAL_IMAGE__SAMPLER" if "sampler" in message.lower() else ""
            return ConfigurationError(f"{where} answered HTTP 404: {message}{hint}")
        if status == 422:
            return ConfigurationError(f"{where} rejected the request (HTTP 422): {message}")
        return refused(status, where, message)


def _is_json(response: httpx.Response) -> bool:
    try:
        response.json()
    except ValueError:
        return False
    return True


def _server_message(response: httpx.Response) -> str:
    """Return the server's error detail as one short line (FastAPI and A1111 shapes)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message: Any = response.text
    if isinstance(body, dict):
        message = body.get("detail", body.get("error", body.get("message", message)))
        if body.get("errors") and isinstance(message, str):
            message = f"{message}: {body['errors']}"
    if isinstance(message, list):
        # FastAPI validation: [{"loc": ["body", "steps"], "msg": "...", ...}, ...]
        parts = []
        for item in message:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        message = "; ".join(parts)
    return one_line(str(message), 200) or f"HTTP {response.status_code}"
