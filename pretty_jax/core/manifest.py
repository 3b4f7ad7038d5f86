"""The manifest of a directory pretty_jax owns (`pretty_jax_manifest.json`: the kind
of command that writes it, the files it wrote and the directories it created, each by
its path relative to the directory), and the checks an output directory passes before
anything is touched:

- containment: every recorded path is relative, holds no `..`, and reaches its file
  through no symbolic link, so it lies inside the directory; a manifest with any
  other entry (absolute, `..`, not a string, through a link) is refused in one line
  naming it, before anything is touched;
- no writing through links: the run's own files (the lock, the manifest, each
  `*.tmp`, stage files, results, figures, checkpoints) are opened with `O_NOFOLLOW`
  after a check of every folder on the way; a link where one of them belongs is an
  error naming it, and its target is left untouched. A file changed in place (the
  lock, an appended stage) must have no other hard link;
- a non-empty directory without a manifest holds no pretty_jax run: it is refused,
  with or without `--overwrite`, naming a few of the files found there (no folder is
  adopted because its entries have the right names);
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pretty_jax.core.errors import UserError
from pretty_jax.core.own_files import TEMPORARY, read_own, refuse_link, relative_name, through_no_link

MANIFEST = "pretty_jax_manifest.json"
LOCK = ".pretty_jax.lock"
RETIRED = ".pretty_jax-retired"
SCHEMA = "pretty_jax/manifest/2"
# The schema before files were recorded one by one (it also listed whole "trees").
_SCHEMA_1 = "pretty_jax/manifest/1"
# Names only pretty_jax writes: never counted as a user's files.
_OWN_NAMES = (MANIFEST, MANIFEST + TEMPORARY, LOCK)
_SHOWN_FOREIGN = 5


def check_output_dir(path: Path, flag: str) -> None:
    """Refuses, before anything loads, an output path that cannot be used: a file, a
    place that cannot be written, a non-empty directory that holds no pretty_jax
    output (naming a few of its entries), a link where its manifest or lock goes, or
    a manifest with an entry that is not inside it (see `read_manifest`). Creates
    nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag}={path} is a file, not a directory; give a directory (it is created if missing)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag}={path}: {existing} is a file, so the directory cannot be created there")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag}={path}: {existing} is not writable; choose a directory you can write to")
    if not path.is_dir():
        return
    for name in (MANIFEST, LOCK):
        refuse_link(path / name)
    if (path / MANIFEST).exists():
        read_manifest(path, flag)
    else:
        foreign = _foreign_entries(path)
        if foreign:
            raise UserError(
                f"{flag}={path} is not empty and holds no pretty_jax output (it has {_list(foreign)}); "
                f"pretty_jax never deletes files it did not write, with or without --overwrite: "
                f"choose a new or empty directory"
            )


def _foreign_entries(path: Path) -> list[str]:
    return sorted(entry.name for entry in path.iterdir() if entry.name not in _OWN_NAMES)


def _list(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN_FOREIGN])
    more = len(names) - _SHOWN_FOREIGN
    return shown + (f" and {more} more" if more > 0 else "")


def read_manifest(root: Path, flag: str) -> tuple[str, set[str], set[str]]:
    """The kind, files and directories recorded in `root`'s manifest, every entry
    checked: a relative path without `..`, reached through no link. Raises UserError,
    in one line naming the manifest, for anything else."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(read_own(path).decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("schema") not in (SCHEMA, _SCHEMA_1):
            raise ValueError(f"schema {manifest.get('schema') if isinstance(manifest, dict) else None!r}")
        kind, files, dirs = manifest["kind"], manifest["files"], manifest["dirs"]
        trees = [t for t in manifest.get("trees", []) if t != RETIRED]
        if trees:
            raise UserError(
                f"{path}: an older pretty_jax recorded whole folders here ({', '.join(map(str, trees))}), which "
                f"cannot tell its files from yours, so nothing was touched. Choose another {flag}, or move this "
                "folder away once you have kept what is yours in it"
            )
        if not isinstance(files, list) or not isinstance(dirs, list) or not isinstance(kind, str):
            raise ValueError("its kind is not a string or its files and dirs are not lists")
        files = {relative_name(entry) for entry in files}
        dirs = {relative_name(entry) for entry in dirs}
    except (ValueError, AttributeError, KeyError, TypeError) as e:
        raise UserError(
            f"{path}: not a pretty_jax manifest ({e}); it was edited, corrupted or written elsewhere, and nothing "
            f"was touched. Choose another {flag}"
        ) from None
    for entry in sorted(files | dirs):
        through_no_link(Path(root), entry, path)
    return kind, files, dirs
