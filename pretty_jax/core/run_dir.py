"""Output directories that pretty_jax owns file by file, and the only way it writes,
moves or deletes anything in them.

A command that writes into a directory (`run`, `train`, `convert`, the organism build,
`data`) owns exactly what it recorded in that directory's manifest,
`pretty_jax_manifest.json`: the files it wrote and the directories it created, each by
its path relative to the directory. Never a whole folder: a file a user adds inside a
folder of the run is not listed, so it is never moved or removed. The rules:

- containment and adoption: see core/manifest.py;
- a path is recorded before the file is created, so a kill at any moment leaves
  nothing unrecorded behind; a file already there that the manifest does not list is
  a user's, and is refused rather than replaced;
- starting over (`--overwrite`) moves the recorded files aside (`retire`), and deletes
  them only once the new run has started (`discard_retired`); a folder is removed only
  once it is empty, so files a user added stay where they are;
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
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from pretty_jax.core.errors import UserError
from pretty_jax.core.manifest import LOCK, MANIFEST, RETIRED, SCHEMA, check_output_dir, read_manifest
from pretty_jax.core.own_files import (
    TEMPORARY,
    LinkRefused,
    open_own,
    refuse_link,
    relative_name,
    replace_with,
    through_no_link,
    write_bytes_to,
)


class OutputLocked(UserError):
    """Another process holds the directory's lock."""


class RunDirectory:
    """An output directory held by this process: its lock and its manifest.

    kind: what writes it ("experiment", "align", "train", "convert", "organism",
    "data", "tiny", "sft_data"); a directory of another kind is refused.
    """

    def __init__(self, path: Path, kind: str, flag: str, active: bool = True):
        self.path, self.kind, self.flag, self.active = Path(path), kind, flag, active
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        self._lock_fd: int | None = None

    @classmethod
    def open(cls, path: Path, kind: str, flag: str) -> "RunDirectory":
        """Checks `path` (see `check_output_dir`), creates it if missing, takes its lock
        and reads its manifest. Raises UserError naming `flag` when it cannot."""
        check_output_dir(path, flag)
        directory = cls(path, kind, flag)
        created = directory._make_root()
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

    def _make_root(self) -> set[str]:
        missing = []
        directory = self.path
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
        return {"."} if missing else set()

    # -- the lock ------------------------------------------------------------------

    def _lock(self) -> None:
        lock_path = self.path / LOCK
        try:
            fd = open_own(lock_path, os.O_RDWR | os.O_CREAT)
        except LinkRefused:
            raise
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
        if not (self.path / MANIFEST).exists():
            return
        kind, self.files, self.dirs = read_manifest(self.path, self.flag)
        if kind != self.kind:
            raise UserError(
                f"{self.flag}={self.path} holds the output of a {kind} command, not of "
                f"a {self.kind}; choose another directory"
            )

    def _write_manifest(self) -> None:
        if not self.active:
            return
        manifest = {"schema": SCHEMA, "kind": self.kind, "files": sorted(self.files), "dirs": sorted(self.dirs)}
        self._replace(self.path / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())

    def _replace(self, path: Path, data: bytes) -> None:
        replace_with(path, lambda temporary: write_bytes_to(temporary, data))

    @property
    def holds_run(self) -> bool:
        """Whether anything besides the manifest and the lock is recorded."""
        return bool(self.files - {MANIFEST, LOCK} or self.dirs - {"."})

    # -- paths ---------------------------------------------------------------------

    def _checked(self, relative: str) -> Path:
        return through_no_link(self.path, relative)

    def path_of(self, relative: str | Path) -> Path:
        """The checked absolute path of a path relative to the directory."""
        return self._checked(relative_name(Path(relative).as_posix()))

    # -- recording -----------------------------------------------------------------

    def record(self, relative: str | Path) -> Path:
        """Records the file `relative` and the directories it needs, creating those;
        returns the absolute path. Call it before creating the file."""
        name = relative_name(Path(relative).as_posix())
        if not self.active:
            return self.path / name
        target = self._checked(name)
        new = name not in self.files
        if new and os.path.lexists(target):
            raise UserError(
                f"{target} exists and was not written by pretty_jax (its manifest does not list it); it is never "
                f"replaced: move it away or choose another {self.flag}"
            )
        self.files.add(name)
        self._make_dirs(str(PurePosixPath(name).parent), new)
        return target

    def record_dir(self, relative: str | Path) -> Path:
        """Records and creates the directory `relative` (and its missing parents)."""
        name = relative_name(Path(relative).as_posix())
        if self.active:
            self._make_dirs(name, False)
        return self.path / name

    def _make_dirs(self, relative: str, changed: bool) -> None:
        """Creates `relative` and its missing parents, recording those it creates, then
        writes the manifest if anything was recorded (before anything is created in
        them)."""
        missing = []
        parts = PurePosixPath(relative).parts if relative != "." else ()
        for depth in range(1, len(parts) + 1):
            name = str(PurePosixPath(*parts[:depth]))
            path = self._checked(name)
            if not path.exists():
                missing.append(name)
        self.dirs |= set(missing)
        if missing or changed:
            self._write_manifest()
        for name in missing:
            try:
                (self.path / name).mkdir()
            except FileExistsError:
                continue
            except OSError as e:
                raise UserError(f"{self.flag}={self.path}: cannot create {self.path / name} ({e.strerror})") from None

    def owns(self, relative: str | Path) -> bool:
        return str(PurePosixPath(Path(relative).as_posix())) in self.files

    def owned_under(self, relative: str | Path) -> list[str]:
        """The recorded files under the directory `relative`."""
        prefix = str(PurePosixPath(Path(relative).as_posix())) + "/"
        return sorted(name for name in self.files if name.startswith(prefix))

    # -- writing -------------------------------------------------------------------

    def write_bytes(self, relative: str | Path, data: bytes) -> Path:
        """Records and writes a whole file atomically (a reader sees the old or the new
        content, never a part)."""
        path = self.record(relative)
        if self.active:
            self._replace(path, data)
        return path

    def write_text(self, relative: str | Path, text: str) -> Path:
        """`write_bytes` of UTF-8 text."""
        return self.write_bytes(relative, text.encode("utf-8"))

    def write_with(self, relative: str | Path, write: Callable[[Path], None]) -> Path:
        """Records `relative` and calls write(temporary_path) on a fresh empty file,
        then moves it into place: for writers such as matplotlib's savefig."""
        path = self.record(relative)
        if self.active:
            replace_with(path, write)
        return path

    def place_files(self, source: Path, relative_dir: str | Path, move: bool = False) -> list[str]:
        """Copies (with `move`, moves) every file of the folder `source` (e.g. a
        temporary folder filled by a writer such as `save_pretrained`) to
        `relative_dir`, each recorded first and replaced atomically; then deletes the
        files an earlier placement recorded there that `source` no longer has. Returns
        the names placed."""
        source = Path(source)
        names = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file() and not p.is_symlink())
        prefix = relative_name(Path(relative_dir).as_posix())
        for name in names:
            transfer = shutil.move if move else shutil.copyfile
            self.write_with(f"{prefix}/{name}", lambda temporary, name=name: transfer(source / name, temporary))
        placed = {f"{prefix}/{name}" for name in names}
        self.remove([name for name in self.owned_under(prefix) if name not in placed])
        return names

    def open_to_change(self, relative: str | Path, flags: int) -> int:
        """Records `relative` and opens it (with `flags`, e.g. O_WRONLY | O_APPEND |
        O_CREAT) to change in place: never through a link. Returns the fd."""
        return open_own(self.record(relative), flags)

    # -- removing ------------------------------------------------------------------

    def move(self, source: str | Path, destination: str | Path) -> Path:
        """Renames the recorded file `source` over `destination` (recorded first), never
        through a link; `source` is then no longer recorded."""
        name = str(PurePosixPath(Path(source).as_posix()))
        if name not in self.files:
            raise ValueError(f"{name} was not written by this command")
        target = self.record(destination)
        if self.active:
            source_path = self._checked(name)
            refuse_link(target)
            os.replace(source_path, target)
            self.files.discard(name)
            self._write_manifest()
        return target

    def remove(self, relatives: Iterable[str | Path]) -> None:
        """Deletes recorded files (e.g. a stale figure) and their unfinished `.tmp`
        writes; unrecorded paths are refused."""
        names = [str(PurePosixPath(Path(r).as_posix())) for r in relatives]
        for name in names:
            if name not in self.files:
                raise ValueError(f"{name} was not written by this command")
        if not self.active:
            return
        paths = [self._checked(name) for name in names]  # every link refused before anything is removed
        for path in paths:
            refuse_link(path.with_name(path.name + TEMPORARY))
        for name, path in zip(names, paths):
            for own in (path, path.with_name(path.name + TEMPORARY)):  # the file and an unfinished write of it
                if own.is_file():
                    own.unlink()
            self.files.discard(name)
        self._write_manifest()

    def remove_empty_dirs(self, under: str = "") -> None:
        """Removes the recorded directories (under `under`, or all) left empty, deepest
        first; one holding a user's file stays, recorded."""
        if not self.active:
            return
        prefix = under + "/" if under else ""
        candidates = [d for d in self.dirs if d != "." and (d == under or d.startswith(prefix))]
        for name in sorted(candidates, key=lambda d: -d.count("/")):
            path = self._checked(name)
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:  # holds a user's files: keep it
                continue
            self.dirs.discard(name)
        self._write_manifest()

    # -- starting over -------------------------------------------------------------

    def retire(self) -> None:
        """Moves every recorded file into `.pretty_jax-retired/<pid>/` and removes the
        recorded directories left empty; anything unrecorded stays in place. Every
        link is refused before anything moves."""
        if not self.active:
            return
        moving = sorted(f for f in self.files - {MANIFEST, LOCK} if not f.startswith(RETIRED + "/"))
        sources = {name: self._checked(name) for name in moving}
        for path in sources.values():
            refuse_link(path.with_name(path.name + TEMPORARY))
        aside = f"{RETIRED}/{os.getpid()}"
        present = [name for name in moving if sources[name].is_file()]
        destinations = {name: f"{aside}/{name}" for name in present}
        self.files |= set(destinations.values())
        for name in sorted({str(PurePosixPath(d).parent) for d in destinations.values()}):
            self._make_dirs(name, False)
        self._write_manifest()
        for name in present:
            os.replace(sources[name], self.path / destinations[name])
        for path in sources.values():
            temporary = path.with_name(path.name + TEMPORARY)
            if temporary.is_file():  # an unfinished write of this run
                temporary.unlink()
        self.files -= set(moving)
        self._write_manifest()
        self.remove_empty_dirs()

    def discard_retired(self) -> None:
        """Deletes what `retire` moved aside (once the new run has started)."""
        if not self.active:
            return
        retired = [f for f in self.files if f.startswith(RETIRED + "/")]
        if not retired and RETIRED not in self.dirs:
            return
        self.remove(retired)
        self.remove_empty_dirs(RETIRED)

    def discard_all(self) -> None:
        """Deletes every recorded file and the recorded directories left empty, the
        manifest, the lock and the directory itself last (when nothing else is in
        it): for a run directory inside another one that starts over."""
        if not self.active:
            return
        self.retire()
        self.discard_retired()
        self.close()
        for name in (LOCK, MANIFEST):
            path = self._checked(name)
            if path.is_file():
                path.unlink()
        if "." in self.dirs:
            try:
                self.path.rmdir()
            except OSError:  # holds a user's files
                pass
