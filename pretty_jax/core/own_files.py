"""Files a run writes for itself, opened, written and read without ever following a
symbolic link (`O_NOFOLLOW` after a check of the path), and replaced atomically
(`<name>.tmp`, fsync, rename). core/run_dir.py builds its directories on these; nothing
else should open a run's own files.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path, PurePosixPath
from typing import Callable

from pretty_jax.core.errors import UserError

TEMPORARY = ".tmp"  # a file is written as <name>.tmp, then renamed over <name>


class LinkRefused(UserError):
    """A symbolic link, or a file with another hard link, where a run's own file goes."""


def relative_name(entry: object) -> str:
    """`entry` as a normalised relative path ("eng-fra/sft.jsonl"); ValueError saying
    why when it is not a string, empty, absolute or holds `..`."""
    if not isinstance(entry, str):
        raise ValueError(f"entry {entry!r} is not a string")
    path = PurePosixPath(entry)
    if not entry or path.is_absolute() or ".." in path.parts or "\\" in entry:
        raise ValueError(f"entry {entry!r} is not a plain path inside the directory (absolute, empty or with '..')")
    return str(path)


def refuse_link(path: Path) -> None:
    """Raises LinkRefused naming `path` when it is a symbolic link."""
    if os.path.islink(path):
        raise LinkRefused(
            f"{path} is a symbolic link (to {os.readlink(path)}) where pretty_jax keeps a file of its own; "
            "it never writes through a link: remove the link (its target is not touched) and run again"
        )


def open_own(path: Path, flags: int, mode: int = 0o644) -> int:
    """`os.open` of one of a run's own files, never through a link at `path`; a file
    opened to be changed in place must have no other hard link. Returns the fd."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            refuse_link(path)
        raise
    if flags & (os.O_WRONLY | os.O_RDWR) and os.fstat(fd).st_nlink > 1:
        os.close(fd)
        raise LinkRefused(
            f"{path} has another hard link, so changing it would change another file too; "
            "pretty_jax never does: copy the directory without links (not cp -l) or remove the other link"
        )
    return fd


def _fresh_temporary(path: Path) -> Path:
    """The empty temporary file `<path>.tmp`, created anew (an earlier one, left by a
    killed write, is removed first; a link there is refused)."""
    temporary = path.with_name(path.name + TEMPORARY)
    refuse_link(temporary)
    if temporary.exists() and not temporary.is_dir():
        temporary.unlink()
    os.close(open_own(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    return temporary


def _fsync(path: Path) -> None:
    fd = open_own(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_with(path: Path, write: Callable[[Path], None]) -> None:
    """Writes `path` atomically: write(temporary) fills `<path>.tmp`, which is then
    flushed to disk and renamed over `path` (a reader sees the old or the new content,
    never a part). A link at `path` or at the temporary file is refused."""
    refuse_link(path)
    temporary = _fresh_temporary(path)
    try:
        write(temporary)
        refuse_link(temporary)  # the writer replaced it by a link: do not move that into place
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        if temporary.is_file() and not temporary.is_symlink():
            temporary.unlink()
        raise


def write_bytes_to(temporary: Path, data: bytes) -> None:
    """Fills a fresh temporary file (see `replace_with`) without following links."""
    with os.fdopen(open_own(temporary, os.O_WRONLY | os.O_TRUNC), "wb") as f:
        f.write(data)


def read_own(path: Path) -> bytes:
    """The content of one of a run's own files, never read through a link."""
    fd = open_own(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def through_no_link(root: Path, relative: str, manifest: Path | None = None) -> Path:
    """The absolute path of `relative` under `root` after checking that no folder on
    the way and not the file itself is a link (so it lies inside `root`)."""
    path = root
    for part in PurePosixPath(relative).parts:
        path = path / part
        if os.path.islink(path):
            where = f", where {manifest} records a file of this run" if manifest else ""
            raise LinkRefused(
                f"{path} is a symbolic link (to {os.readlink(path)}){where}; pretty_jax never writes, moves "
                "or deletes through a link: remove the link (its target is not touched) and run again"
            )
    return path
