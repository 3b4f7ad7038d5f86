"""Output directories that pretty_jax owns file by file.

A command that writes into a directory (`run`, `train`, `convert`) owns exactly what
it recorded in that directory's manifest, `pretty_jax_manifest.json`: the files it
wrote, the directories it created, and the trees it created whole (a train state, an
exported model). It never removes or replaces anything else:

- a non-empty directory without a manifest holds no pretty_jax run: it is refused,
  with or without `--overwrite`, naming a few of the files found there;
- a path is recorded before the file is created, so a kill at any moment leaves
  nothing unrecorded behind;
- starting over (`--overwrite`) moves the recorded files aside (`retire`), and deletes
  them only once the new run has started (`discard_retired`); files a user added to
  the directory stay where they are;
- while a command runs it holds an exclusive `fcntl.flock` on `.pretty_jax.lock`; the
  kernel releases it when the process dies (even by `kill -9`), so a stale lock never
  blocks, and a second command on the same directory fails at once naming the holder.

Multi-host runs: process 0 opens the directory; the others get `RunDirectory.passive`,
which records and writes nothing.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Iterable

from pretty_jax.core.errors import UserError

MANIFEST = "pretty_jax_manifest.json"
LOCK = ".pretty_jax.lock"
RETIRED = ".pretty_jax-retired"
SCHEMA = "pretty_jax/manifest/1"
# Names only pretty_jax writes: never counted as a user's files.
_OWN_NAMES = (MANIFEST, MANIFEST + ".tmp", LOCK)
_SHOWN_FOREIGN = 5


def check_output_dir(path: Path, flag: str) -> None:
    """Refuses, before anything loads, an output path that cannot be used: a file, a
    place that cannot be written, or a non-empty directory that holds no pretty_jax
    output (naming a few of its entries). Creates nothing."""
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
    if path.is_dir() and not (path / MANIFEST).exists():
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


class OutputLocked(UserError):
    """Another process holds the directory's lock."""


class RunDirectory:
    """An output directory held by this process: its lock and its manifest.

    kind: what writes it ("experiment", "align", "train", "convert"); a directory of
    another kind is refused.
    """

    def __init__(self, path: Path, kind: str, flag: str, active: bool = True):
        self.path, self.kind, self.flag, self.active = Path(path), kind, flag, active
        self.files: set[str] = set()
        self.trees: set[str] = set()
        self.dirs: set[str] = set()
        self._lock_fd: int | None = None

    @classmethod
    def open(cls, path: Path, kind: str, flag: str) -> "RunDirectory":
        """Checks `path` (see `check_output_dir`), creates it if missing, takes its lock
        and reads its manifest. Raises UserError naming `flag` when it cannot."""
        check_output_dir(path, flag)
        directory = cls(path, kind, flag)
        created = directory._make_dirs(directory.path)
        directory._lock()
        try:
            directory._read_manifest()
        except BaseException:
            directory.close()  # a refused directory is not left locked by a long-lived caller
            raise
        directory.dirs |= created
        directory.files |= {MANIFEST, LOCK}
        directory._write_manifest()
        return directory

    @classmethod
    def adopt(cls, path: Path, kind: str, flag: str, known: Iterable[str]) -> "RunDirectory":
        """`open`, for a directory an older pretty_jax wrote without a manifest: when its
        entries are all among the `known` names that command writes, they are recorded
        (folders as trees); anything else is refused as `open` refuses it."""
        path = Path(path)
        if path.is_dir() and not (path / MANIFEST).exists():
            entries = _foreign_entries(path)
            if entries and set(entries) <= set(known):
                directory = cls(path, kind, flag)
                directory._lock()
                directory.files = {MANIFEST, LOCK} | {e for e in entries if (path / e).is_file()}
                directory.trees = {e for e in entries if (path / e).is_dir()}
                directory._write_manifest()
                return directory
        return cls.open(path, kind, flag)

    @classmethod
    def inspect(cls, path: Path, kind: str, flag: str) -> "RunDirectory":
        """The directory as a dry run sees it: checked (see `check_output_dir`) and its
        manifest read (a directory of another kind is refused), with nothing created or
        locked; only for reading what an earlier run recorded (`stages.RunRecord`)."""
        check_output_dir(path, flag)
        directory = cls(path, kind, flag, active=Path(path).is_dir())
        directory._read_manifest()
        return directory

    @classmethod
    def passive(cls, path: Path, kind: str, flag: str) -> "RunDirectory":
        """The view of a process other than process 0: records and writes nothing."""
        return cls(path, kind, flag, active=False)

    # -- the lock ------------------------------------------------------------------

    def _lock(self) -> None:
        lock_path = self.path / LOCK
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"{self.flag}={self.path}: cannot write there ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputLocked(
                    f"{self.flag}={self.path} is in use by {holder}; wait for it to finish or "
                    "choose another directory (two runs never write the same files)"
                ) from None
            raise
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        info = f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        self._lock_fd = fd

    def close(self) -> None:
        """Releases the lock (a process that ends releases it anyway)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the manifest --------------------------------------------------------------

    def _read_manifest(self) -> None:
        path = self.path / MANIFEST
        if not path.exists():
            return
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if manifest.get("schema") != SCHEMA:
                raise ValueError(f"schema {manifest.get('schema')!r}")
            kind = manifest["kind"]
            recorded = [set(manifest[key]) for key in ("files", "trees", "dirs")]
        except (ValueError, AttributeError, KeyError, TypeError) as e:
            raise UserError(
                f"{path}: not a pretty_jax manifest ({e}); it was edited or corrupted. "
                f"Choose another {self.flag}"
            ) from None
        if kind != self.kind:
            raise UserError(
                f"{self.flag}={self.path} holds the output of a {kind} command, not of "
                f"a {self.kind}; choose another directory"
            )
        self.files, self.trees, self.dirs = recorded

    def _write_manifest(self) -> None:
        if not self.active:
            return
        manifest = {"schema": SCHEMA, "kind": self.kind, "files": sorted(self.files),
                    "trees": sorted(self.trees), "dirs": sorted(self.dirs)}
        _replace_text(self.path / MANIFEST, json.dumps(manifest, indent=1) + "\n")

    @property
    def holds_run(self) -> bool:
        """Whether anything besides the manifest and the lock is recorded."""
        return bool(self.files - {MANIFEST, LOCK} or self.trees or self.dirs - {"."})

    # -- recording -----------------------------------------------------------------

    def record(self, relative: str | Path, tree: bool = False) -> Path:
        """Records `relative` (a file, or with `tree` a directory whose whole content
        this command writes) and the directories it needs, creating those; returns the
        absolute path. Call it before creating the file."""
        relative = Path(relative)
        target = self.path / relative
        if not self.active:
            return target
        new = str(relative) not in (self.trees if tree else self.files)
        (self.trees if tree else self.files).add(str(relative))
        if new:
            self._write_manifest()
        created = self._make_dirs(target.parent)
        if created:
            self.dirs |= created
            self._write_manifest()
        return target

    def owns(self, relative: str | Path) -> bool:
        relative = str(Path(relative))
        return relative in self.files or any(relative == t or relative.startswith(t + "/") for t in self.trees)

    def _make_dirs(self, directory: Path) -> set[str]:
        """Creates `directory` and missing parents; returns those created, relative to
        the root ("." for the root itself)."""
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as e:
                raise UserError(f"{self.flag}={self.path}: cannot create {path} ({e.strerror})") from None
        return {os.path.relpath(p, self.path) for p in missing if _inside(p, self.path)}

    def write_text(self, relative: str | Path, text: str) -> Path:
        """Records and writes a whole file atomically (a reader sees the old or the new
        content, never a part)."""
        path = self.record(relative)
        if self.active:
            _replace_text(path, text)
        return path

    def write_with(self, relative: str | Path, write) -> Path:
        """Records `relative` and calls write(temporary_path), then moves the temporary
        file into place: for writers such as matplotlib's savefig."""
        path = self.record(relative)
        if self.active:
            temporary = path.with_name(path.name + ".tmp")
            try:
                write(temporary)
                os.replace(temporary, path)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
        return path

    # -- starting over -------------------------------------------------------------

    def retire(self) -> None:
        """Moves every recorded file and tree into `.pretty_jax-retired/` and removes
        the recorded directories left empty; anything unrecorded stays in place."""
        if not self.active:
            return
        moving = sorted((self.files | self.trees) - {MANIFEST, LOCK, RETIRED})
        self.trees.add(RETIRED)
        self._write_manifest()
        aside = self.path / RETIRED / f"{os.getpid()}"
        for relative in moving:
            source = self.path / relative
            for candidate in (source, source.with_name(source.name + ".tmp")):
                if candidate.exists():
                    destination = aside / os.path.relpath(candidate, self.path)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(candidate, destination)
        for relative in sorted(self.dirs - {"."}, key=lambda d: -d.count("/")):
            try:
                (self.path / relative).rmdir()
            except OSError:  # holds a user's files, or is already gone: keep it recorded
                continue
            self.dirs.discard(relative)
        self.files -= set(moving)
        self.trees -= set(moving)
        self._write_manifest()

    def discard_retired(self) -> None:
        """Deletes what `retire` moved aside (once the new run has started)."""
        if not self.active or RETIRED not in self.trees:
            return
        shutil.rmtree(self.path / RETIRED, ignore_errors=True)
        self.trees.discard(RETIRED)
        self._write_manifest()

    def remove(self, relatives: Iterable[str | Path]) -> None:
        """Deletes recorded files (e.g. a stale figure); unrecorded paths are refused."""
        for relative in relatives:
            if not self.owns(relative):
                raise ValueError(f"{relative} was not written by this command")
            (self.path / relative).unlink(missing_ok=True)
            self.files.discard(str(Path(relative)))
        self._write_manifest()


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _replace_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
