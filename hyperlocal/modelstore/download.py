"""Getting models onto this machine: ``pull`` a hub repository or a URL download.

Hub repositories go through ``huggingface_hub`` (only the files their purpose
needs, ``select_hub_files``); URLs through httpx into ``<file>.part`` with Range
resume, retries with backoff, a sha256 check and an atomic rename. Where each
model lands is ``hyperlocal.modelstore.store``; nothing here runs unless asked.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pydantic import SecretStr

from hyperlocal.errors import ConfigurationError, DownloadFailed, first_line
from hyperlocal.modelstore.entries import ModelEntry
from hyperlocal.modelstore.hub import literal_pattern, select_hub_files
from hyperlocal.modelstore.progress import TransferProgress
from hyperlocal.modelstore.references import Purpose
from hyperlocal.modelstore.url_download import download_url
from hyperlocal.settings import ModelsSettings, RetrySettings


def pull(
    entry: ModelEntry,
    models: ModelsSettings,
    retry: RetrySettings | None = None,
    progress: TransferProgress | None = None,
) -> Path:
    """Fetch ``entry`` (a hub repository or a URL) and return its local path.

    Raises ``DownloadFailed`` (one line) when it cannot be fetched, and
    ``ConfigurationError`` for an entry that is not pullable.
    """
    if entry.kind == "url":
        return download_url(
            entry.reference,
            Path(entry.where),
            sha256=entry.sha256,
            token=models.download_token,
            retry=retry or RetrySettings(),
            progress=progress,
        )
    if entry.kind == "hub":
        return pull_hub(
            entry.reference,
            revision=entry.revision,
            purpose=entry.purpose,
            token=models.hf_token,
            prefer_fp16=entry.prefer_fp16,
            setting=entry.setting,
        )
    raise ConfigurationError(
        f"{entry.setting or entry.what}={entry.shown} is a {entry.kind} model: nothing to pull"
    )


def fast_transfer() -> str:
    """Turn on the fastest transfer huggingface_hub offers here; return its name.

    huggingface_hub 1.x and later use hf-xet by themselves (``hf_transfer`` is gone);
    older versions use ``hf_transfer`` when it is installed and switched on.
    """
    from huggingface_hub import constants

    if hasattr(constants, "HF_HUB_ENABLE_HF_TRANSFER"):
        if importlib.util.find_spec("hf_transfer") is not None:
            constants.HF_HUB_ENABLE_HF_TRANSFER = True
            return "hf_transfer"
        return "http"
    return "hf_xet" if importlib.util.find_spec("hf_xet") is not None else "http"


def pull_hub(
    repo_id: str,
    *,
    revision: str | None,
    purpose: Purpose,
    token: SecretStr | None,
    prefer_fp16: bool = True,
    setting: str = "",
) -> Path:
    """Download what ``purpose`` needs of ``repo_id`` into the Hugging Face cache.

    Lists the repository, picks the files (``select_hub_files``) and fetches them
    with ``snapshot_download`` (resumable; files already cached are skipped).
    Raises ``DownloadFailed`` with one line for a missing, gated or unreachable
    repository or revision.
    """
    if importlib.util.find_spec("huggingface_hub") is None:
        raise ConfigurationError(
            "fetching Hugging Face models needs huggingface_hub: pip install huggingface_hub"
        )
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    fast_transfer()
    secret = token.get_secret_value() if token is not None else None
    at = f" at revision {revision}" if revision else ""
    try:
        files = HfApi(token=secret).list_repo_files(repo_id, revision=revision)
        chosen = select_hub_files(purpose, files, prefer_fp16)
        if not chosen:
            raise DownloadFailed(
                f"{repo_id}{at} holds none of the files a {purpose} model needs "
                f"({', '.join(files[:5]) or 'no files'}); check {setting or 'the setting'}"
            )
        folder = snapshot_download(
            repo_id,
            revision=revision,
            token=secret,
            allow_patterns=[literal_pattern(name) for name in chosen],
        )
    except DownloadFailed:
        raise
    except GatedRepoError:
        raise DownloadFailed(
            f"{repo_id} is gated: accept its licence on huggingface.co and set "
            "HYPERLOCAL_MODELS__HF_TOKEN (or log in with `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise DownloadFailed(
            f"{repo_id} has no revision {revision!r}: fix "
            f"{setting.replace('__MODEL', '__REVISION') or 'the revision setting'}"
        ) from None
    except RepositoryNotFoundError:
        raise DownloadFailed(
            f"{repo_id} was not found on the Hugging Face hub (or is private: set "
            "HYPERLOCAL_MODELS__HF_TOKEN)"
        ) from None
    except OfflineModeIsEnabled:
        raise DownloadFailed(
            f"cannot fetch {repo_id}: HF_HUB_OFFLINE is set, so huggingface_hub stays offline"
        ) from None
    except HfHubHTTPError as exc:
        raise DownloadFailed(f"cannot fetch {repo_id}{at}: {first_line(exc, limit=300)}") from None
    except Exception as exc:  # the hub client's own transport errors differ by version
        raise DownloadFailed(
            f"cannot fetch {repo_id}{at}: {type(exc).__name__}: {first_line(exc, limit=300)}"
        ) from None
    return Path(folder)
