"""The faults Hyperlocal knows, as one tree.

Every backend and step raises only these, so a task decides what to do from the
branch alone (DESIGN.md, "Faults")::

    HyperlocalError
     ├── PassingFault            retried by the task with backoff and jitter
     │    ├── BackendUnavailable   connection refused or reset, server still loading
     │    ├── BackendTimeout       no answer within the configured time
     │    └── BackendBusy          HTTP 429 / 502 / 503 / 504
     ├── BadOutput               re-asked within the call, a bounded number of times
     │    ├── InvalidModelOutput   JSON that does not parse or validate, copy that drops a fact
     │    ├── InvalidImage         bytes that are not a usable picture
     │    └── PictureRejected      every attempt at a picture failed its check
     ├── StepCancelled           a step stopped because another step already failed the run
     └── ConfigurationError      fails at once, with one line saying what and how to fix it
          ├── SettingsError        a bad setting or environment variable
          ├── BriefError           a brief that does not validate or cannot be read
          ├── AssetError           a logo, font or file outside the allowed folders or missing
          ├── BackendNotAvailable  a backend kind this installation cannot build
          ├── ModelMissing         a model the settings name is not on this machine (pull it)
          ├── DownloadFailed       a model download that failed (HTTP error, wrong sha256)
          └── LayoutError          a template that fails, a font that cannot draw the text
               └── TextOverflow      text that does not fit its box at the smallest size

Each error's ``str()`` is the one line a user sees: what went wrong and how to
fix it. Messages never carry secrets.
"""

from __future__ import annotations


class HyperlocalError(Exception):
    """Base of every fault Hyperlocal raises on purpose."""

    #: A short label for the kind of fault, shown before the message on the CLI.
    label = "error"
    #: The command line's exit code for it: 1 for a run that failed, 2 for something to fix.
    exit_code = 1


class PassingFault(HyperlocalError):
    """A fault that may go away if the same call is made again a little later."""

    label = "temporary failure"


class BackendUnavailable(PassingFault):
    """The backend could not be reached (refused, reset, still loading)."""


class BackendTimeout(PassingFault):
    """The backend did not answer within the configured time."""


class BackendBusy(PassingFault):
    """The backend answered that it is overloaded (HTTP 429, 502, 503, 504)."""


class BadOutput(HyperlocalError):
    """A model answered, but the answer is not usable; asking again may help."""

    label = "bad model output"


class InvalidModelOutput(BadOutput):
    """Text output that does not parse, validate or keep the brief's facts."""


class InvalidImage(BadOutput):
    """Image output that does not decode or is not a usable picture."""


class StepCancelled(HyperlocalError):
    """A step stopped because the run had already failed elsewhere (never the run's cause)."""

    label = "cancelled"


class ConfigurationError(HyperlocalError):
    """Something the user must change; retrying cannot help."""

    label = "configuration error"
    exit_code = 2


class SettingsError(ConfigurationError):
    """A setting or environment variable has a value that is not allowed."""

    label = "settings error"


class BriefError(ConfigurationError):
    """A brief that cannot be read or does not validate."""

    label = "brief error"


class AssetError(ConfigurationError):
    """An asset path (logo, font, brief file) that is missing or not allowed."""

    label = "asset error"


class BackendNotAvailable(ConfigurationError):
    """A backend kind that this installation cannot build (unknown kind, missing extra)."""


class ModelMissing(ConfigurationError):
    """A model the settings name that is not on this machine; the message names the pull command."""

    label = "missing model"


class DownloadFailed(ConfigurationError):
    """A model download that failed for good: an HTTP error, retries used up, a wrong sha256."""

    label = "download failed"


class LayoutError(ConfigurationError):
    """A flyer that cannot be typeset as asked (text that cannot fit, template failure)."""

    label = "layout error"


class TextOverflow(LayoutError):
    """Text that does not fit its box even at the smallest allowed size."""

    def __init__(self, message: str, block: str) -> None:
        super().__init__(message)
        #: Which block overflowed: headline, body or business.
        self.block = block


def first_line(
    problem: BaseException | str, default: str | None = None, limit: int | None = None
) -> str:
    """Return the first line of an exception's message or of a text, cut to ``limit``.

    For one-line reports. An empty message gives ``default``, else the exception
    type's name (or an empty string for a text).
    """
    text = str(problem).strip()
    if not text:
        if default is not None:
            return default
        return "" if isinstance(problem, str) else type(problem).__name__
    return text.splitlines()[0].strip()[:limit]


def is_passing(exc: BaseException | None) -> bool:
    """Return True when ``exc`` is a fault worth retrying later."""
    return isinstance(exc, PassingFault)


class PictureRejected(BadOutput):
    """Every picture painted for a variant failed its check (with ``qc.on_exhausted = "fail"``)."""

    label = "picture rejected"
