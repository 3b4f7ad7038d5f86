"""Fetching datasets of the catalogue into the data cache, checked, and the run flags
that read them.

The cache is an output directory owned file by file (core/run_dir.py): it records each
file before creating it, holds a lock while a fetch runs, and never removes or
replaces a file it did not write. Per dataset, `<cache>/<name>/fetched.json` records
each file's URL and SHA-256, how it was checked, and a hub dataset's commit.

A file is downloaded into `<target>.partial`, resumed from there after an interruption,
checked against its digest (a mismatch removes the download and is refused naming the
file and both digests), then moved into place. A file already at its place that the
cache did not write (a user put it there, e.g. after the offline instructions) is
checked against the pinned digest and kept; one that does not match is refused and left
as it is. Archives are unpacked into a staging folder and moved into place whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

from pretty_jax.core.errors import UserError
from pretty_jax.core.own_files import open_own, relative_name
from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.datasets import catalog, download
from pretty_jax.datasets.catalog import Dataset, RemoteFile

RECORD = "fetched.json"
PARTIAL = ".partial"


@dataclasses.dataclass
class _Record:
    """A dataset's fetched.json: files (target -> url, sha256, checked) and the hub commit."""

    files: dict[str, dict[str, str]]
    revision: str | None
    unpacked: list[str]

    def as_json(self, name: str) -> str:
        record = {"dataset": name, "revision": self.revision, "files": self.files, "unpacked": sorted(self.unpacked)}
        return json.dumps(record, indent=1, allow_nan=False) + "\n"


class Fetcher:
    """Fetches datasets into `cache` (created if missing; see the module docstring).

    mirror: a URL base that serves every file at the path it has below its origin
      (tests, institutional mirrors); None: the origins.
    token: sent as a bearer token with requests for hub files (gated datasets).
    say: where one-line notes go (a file checked, a file placed by hand).
    """

    def __init__(self, cache: Path, mirror: str | None = None, token: str | None = None,
                 say: Callable[[str], None] = print, flag: str = "--cache_dir"):
        self.cache, self.mirror, self.token, self.say = Path(cache), mirror, token, say
        self.directory = RunDirectory.open(self.cache, "data", flag)

    def close(self) -> None:
        self.directory.close()

    def fetch(self, datasets: Sequence[Dataset]) -> list[str]:
        """Fetches every file of `datasets`; returns one line per dataset: its name and
        the run flags that read it. On an unreachable host, raises UserError holding
        what to download and where to put it."""
        lines = []
        for index, dataset in enumerate(datasets):
            try:
                self._fetch_dataset(dataset)
            except download.Unreachable as e:
                raise UserError(self._offline_instructions(e, datasets[index:])) from None
            root = self.cache / dataset.name
            lines.append(f"{dataset.name}: " + " ".join(catalog.run_flags(dataset, str(root))))
        return lines

    # -- one dataset ---------------------------------------------------------------

    def _fetch_dataset(self, dataset: Dataset) -> None:
        record = self._read_record(dataset)
        for file in dataset.files:
            self._fetch_file(dataset, file, record)
            unpacked = file.unpack is not None and file.unpack.target in record.unpacked
            if file.unpack is not None and not (unpacked and (self.cache / dataset.name / file.unpack.target).exists()):
                self._unpack(dataset, file)
                record.unpacked = sorted(set(record.unpacked) | {file.unpack.target})
                self._write_record(dataset, record)

    def _relative(self, dataset: Dataset, target: str) -> str:
        return f"{dataset.name}/{target}"

    def _fetch_file(self, dataset: Dataset, file: RemoteFile, record: _Record) -> None:
        relative = self._relative(dataset, file.target)
        path = self.cache / relative
        known = record.files.get(file.target)
        if path.exists():
            self._check_present(dataset, file, record, path, known)
            return
        revision = record.revision or dataset.revision
        url = catalog.file_url(dataset, file, revision, self.mirror)
        partial = self.directory.record(relative + PARTIAL)
        self.directory.record(relative)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token and file.origin == catalog.HUB else {}
        fetched = download.download(url, partial, relative, headers)
        expected, checked = file.digest, "pinned digest"
        if file.origin == catalog.HUB:
            expected, checked = download.hub_digest(fetched.headers), "the hub's digest"
            record.revision = record.revision or fetched.headers.get("x-repo-commit")
        if expected is None and known is not None:
            expected, checked = known["sha256"], "the digest its first fetch recorded"
        if expected is None:
            checked = "not checked: no digest is published; this fetch's digest is recorded"
        else:
            try:
                download.check_digest(partial, expected, f"{relative} (from {url})")
            except UserError as e:
                self.directory.remove([relative + PARTIAL])
                raise UserError(f"{e}; the download was removed. Run again, or fetch it by hand and compare") from None
        self.directory.move(relative + PARTIAL, relative)
        record.files[file.target] = {"url": url, "sha256": download.file_digest(path, "sha256"), "checked": checked}
        self._write_record(dataset, record)
        self.say(f"{relative}: {fetched.size:,} bytes, {checked}")

    def _check_present(self, dataset: Dataset, file: RemoteFile, record: _Record, path: Path,
                       known: dict[str, str] | None) -> None:
        relative = self._relative(dataset, file.target)
        sha256 = download.file_digest(path, "sha256")
        if known is not None:
            if sha256 != known["sha256"]:
                raise UserError(f"{relative}: {sha256.replace(':', ' ', 1)} is not the "
                                f"{known['sha256'].replace(':', ' ', 1)} it had when fetched; it was changed "
                                f"since. Move it away (pretty_jax does not replace it) and run again")
            return
        if file.digest is not None:
            download.check_digest(path, file.digest, f"{path} (not written by pretty_jax, kept as it is)")
            checked = "placed by hand, pinned digest"
        else:
            checked = "placed by hand, not checked: no digest is published; its digest is recorded"
        record.files[file.target] = {"url": catalog.file_url(dataset, file, record.revision or dataset.revision),
                                     "sha256": sha256, "checked": checked}
        self._write_record(dataset, record)
        self.say(f"{relative}: {checked}")

    def _unpack(self, dataset: Dataset, file: RemoteFile) -> None:
        archive = self.cache / self._relative(dataset, file.target)
        target = self._relative(dataset, file.unpack.target)
        if (self.cache / target).exists() and not self.directory.owned_under(target):
            raise UserError(f"{self.cache / target} exists and was not unpacked by pretty_jax; move it away "
                            f"(it is never replaced) and run again")
        try:
            with tarfile.open(archive) as tar:
                if file.unpack.member is None:
                    self._unpack_tree(tar, target)
                else:
                    self._unpack_member(tar, file.unpack.member, target, archive)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise UserError(f"{archive}: not a readable archive ({e})") from None
        self.say(f"{target}: unpacked from {archive.name}")

    def _unpack_tree(self, tar: tarfile.TarFile, target: str) -> None:
        """Unpacks the archive's top-level folder (named like `target`) into `target`,
        file by file: each recorded before it is written, so nothing unpacked is
        unrecorded and a user's file is never replaced."""
        top = Path(target).name
        files = [(member, PurePosixPath(member.name.removeprefix("./"))) for member in tar.getmembers() if member.isfile()]
        inside = [(member, path) for member, path in files if len(path.parts) > 1 and path.parts[0] == top]
        if not inside:
            names = ", ".join(sorted({path.parts[0] for _, path in files if path.parts})[:5])
            raise UserError(f"{tar.name}: expected a top-level folder {top}, found {names}")
        for member, path in inside:
            try:
                relative = relative_name(str(PurePosixPath(*path.parts[1:])))
            except ValueError as e:
                raise UserError(f"{tar.name}: {e}; not unpacked") from None
            self.directory.write_with(f"{target}/{relative}",
                                      lambda temporary, member=member: _copy(tar.extractfile(member), temporary))

    def _unpack_member(self, tar: tarfile.TarFile, member: str, target: str, archive: Path) -> None:
        names = {name.removeprefix("./"): name for name in tar.getnames()}
        if member not in names:
            raise UserError(f"{archive}: holds no {member} (it has {', '.join(sorted(names)[:5])})")
        source = tar.extractfile(names[member])
        self.directory.write_with(target, lambda temporary: _copy(source, temporary))

    # -- records and messages ------------------------------------------------------

    def _read_record(self, dataset: Dataset) -> _Record:
        path = self.cache / dataset.name / RECORD
        if not path.exists():
            return _Record({}, None, [])
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return _Record(dict(data["files"]), data["revision"], list(data["unpacked"]))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}: not a record pretty_jax.data wrote ({e}); it was edited or corrupted") from None

    def _write_record(self, dataset: Dataset, record: _Record) -> None:
        self.directory.write_text(f"{dataset.name}/{RECORD}", record.as_json(dataset.name))

    def _offline_instructions(self, error: download.Unreachable, datasets: Sequence[Dataset]) -> str:
        missing = []
        for dataset in datasets:
            revision = self._read_record(dataset).revision or dataset.revision
            for file in dataset.files:
                relative = self._relative(dataset, file.target)
                if not (self.cache / relative).exists():
                    missing.append((relative, catalog.file_url(dataset, file, revision)))
        width = max(len(relative) for relative, _ in missing)
        lines = [f"  {relative:<{width}}  {url}" for relative, url in missing]
        return (f"no network: {error}. Where a network exists, download each file below and put it at its "
                f"path under {self.cache}, then run this command again (it checks them):\n" + "\n".join(lines))


def _copy(source, destination: Path) -> None:
    with os.fdopen(open_own(destination, os.O_WRONLY | os.O_TRUNC), "wb") as out:
        shutil.copyfileobj(source, out)
