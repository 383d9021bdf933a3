"""Where models live on this machine.

A model reference in settings is one of three kinds:

- a local path (it exists, or looks like one: starts with ``/``, ``.`` or ``~``,
  or ends in a weights suffix such as ``.safetensors``);
- an http(s) URL of a single ``.safetensors`` file (a Civitai download link, say),
  downloaded to ``<models.dir>/downloads/<name>-<8 hex of the URL's sha256>.safetensors``;
- a Hugging Face repository id (``org/name``), kept in the Hugging Face cache
  (``HF_HUB_CACHE``) at the revision the settings pin.

``ModelEntry`` says where one reference is expected and whether it is there
(``references``, ``hub`` and ``entries``, exported here). Nothing of those touches
the network or is called implicitly by a run: a missing model is a
``ModelMissing`` error naming ``PULL_COMMAND``. Fetching is ``download`` (hub
repositories and URL files), checking files against their recorded digests
``verify``, running model servers as child processes ``server_process``.
"""

from hyperlocal.modelstore.entries import (
    ModelEntry,
    describe,
    disk_size,
    local_path,
    model_folder,
    model_name,
    require_local,
    served_entry,
)
from hyperlocal.modelstore.hub import hub_cache, hub_snapshot, sdxl_folder_variant, select_hub_files
from hyperlocal.modelstore.progress import human_bytes
from hyperlocal.modelstore.references import (
    PULL_COMMAND,
    Purpose,
    classify,
    display_reference,
    is_path_like,
    is_url,
    url_download_path,
    url_file_name,
)

__all__ = [
    "PULL_COMMAND",
    "ModelEntry",
    "Purpose",
    "classify",
    "describe",
    "disk_size",
    "display_reference",
    "hub_cache",
    "hub_snapshot",
    "human_bytes",
    "is_path_like",
    "is_url",
    "local_path",
    "model_folder",
    "model_name",
    "require_local",
    "sdxl_folder_variant",
    "select_hub_files",
    "served_entry",
    "url_download_path",
    "url_file_name",
]
