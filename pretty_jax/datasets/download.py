"""One file over HTTP into a partial file: resumed where an earlier try stopped (a Range
request from the partial file's size), with progress, and redirects followed by hand so
that the headers of the host asked (the hub's digest and commit) are kept and a token is
never sent to another host than the one it was given for.

Digests: `file_digest` computes a "<kind>:<hex>" digest (sha256, or gitblob: git's id of
the content) of a file on disk, `check_digest` compares.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import http.client
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Mapping

from pretty_jax.core.errors import UserError
from pretty_jax.core.own_files import open_own
from pretty_jax.core.progress import Progress

CHUNK_BYTES = 1 << 16
TIMEOUT_S = 30
MAX_REDIRECTS = 5
LOG_INTERVAL_S = 5.0


class Unreachable(UserError):
    """A host could not be reached (no network, a name that does not resolve, a refused
    connection, a timeout) before any byte came."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"cannot reach {urllib.parse.urlsplit(url).netloc} ({reason})")
        self.url, self.reason = url, reason


class Interrupted(UserError):
    """The connection broke in the middle of a file; the bytes received are kept."""


@dataclasses.dataclass(frozen=True)
class Fetched:
    """What the server said of a downloaded file: the headers of the last response from
    the host asked (names lower-cased) and the file's size."""

    headers: Mapping[str, str]
    size: int


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx response comes back as an HTTPError, handled by `_open`


_OPENER = urllib.request.build_opener(_NoRedirects)


def _open(url: str, headers: Mapping[str, str], start: int) -> tuple[http.client.HTTPResponse, dict[str, str]]:
    """The response that carries the body of `url` from byte `start`, and the headers of
    the last response from the host of `url` (a hub answers there with the file's digest
    and commit, then redirects to a CDN). Authorization goes only to the host of `url`."""
    host = urllib.parse.urlsplit(url).netloc
    host_headers: dict[str, str] = {}
    for _ in range(MAX_REDIRECTS + 1):
        same_host = urllib.parse.urlsplit(url).netloc == host
        sent = dict(headers) if same_host else {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if start:
            sent["Range"] = f"bytes={start}-"
        try:
            response = _OPENER.open(urllib.request.Request(url, headers=sent), timeout=TIMEOUT_S)
        except urllib.error.HTTPError as e:
            if same_host:
                host_headers = {k.lower(): v for k, v in e.headers.items()}
            if e.code in (301, 302, 303, 307, 308) and e.headers.get("Location"):
                url = urllib.parse.urljoin(url, e.headers["Location"])
                continue
            raise
        except urllib.error.URLError as e:
            raise Unreachable(url, str(e.reason)) from None
        except (TimeoutError, ConnectionError) as e:
            raise Unreachable(url, str(e)) from None
        if same_host:
            host_headers = {k.lower(): v for k, v in response.headers.items()}
        return response, host_headers
    raise UserError(f"{url}: more than {MAX_REDIRECTS} redirects")


def download(url: str, partial: Path, label: str, headers: Mapping[str, str] | None = None) -> Fetched:
    """Appends the rest of `url` to `partial` (created if missing): a Range request from
    its size; a server that ignores Range sends the whole file, which replaces the
    partial content. Returns the headers and the size of the whole file.

    Raises Unreachable before any byte came, Interrupted when the connection broke
    (the partial file keeps what arrived), UserError naming `url` for an HTTP error."""
    start = partial.stat().st_size if partial.exists() else 0
    try:
        response, host_headers = _open(url, headers or {}, start)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # the partial file already holds the whole file
            return Fetched({k.lower(): v for k, v in e.headers.items()}, start)
        raise UserError(_http_error(url, e.code, e.reason)) from None
    with response:
        if response.status != 206:
            start = 0  # the whole file, from its first byte
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else 0
        received = start
        flags = os.O_RDWR if start else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with os.fdopen(open_own(partial, flags), "r+b" if start else "wb") as out, Progress(
            -(-total // 1024), label, unit="KiB", initial=-(-start // 1024), log_interval=LOG_INTERVAL_S
        ) as progress:
            out.seek(start)
            out.truncate()
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (http.client.IncompleteRead, ConnectionError, TimeoutError) as e:
                    raise Interrupted(
                        f"{url}: the connection broke after {received:,} of {total:,} bytes ({type(e).__name__}); "
                        f"what arrived is kept in {partial}: run the same command again to resume"
                    ) from None
                if not chunk:
                    break
                out.write(chunk)
                shown = -(-received // 1024)
                received += len(chunk)
                progress.update(-(-received // 1024) - shown)
    if total and received != total:
        raise Interrupted(f"{url}: {received:,} of {total:,} bytes arrived; run the same command again to resume")
    return Fetched(host_headers, received)


def _http_error(url: str, code: int, reason: str) -> str:
    if code in (401, 403):
        return (f"{url}: HTTP {code} {reason}: access refused. A gated dataset needs its terms accepted on its page "
                "and your token (`hf auth login`, or HF_TOKEN)")
    if code == 404:
        return f"{url}: HTTP 404: no such file there (moved or renamed?)"
    return f"{url}: HTTP {code} {reason}"


def file_digest(path: Path, kind: str) -> str:
    """The "<kind>:<hex>" digest of the file at `path`; kind "sha256" or "gitblob"."""
    if kind == "sha256":
        hasher = hashlib.sha256()
    elif kind == "gitblob":
        hasher = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    else:
        raise ValueError(f"unknown digest kind {kind!r}")
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            hasher.update(block)
    return f"{kind}:{hasher.hexdigest()}"


def check_digest(path: Path, expected: str, name: str) -> None:
    """Raises UserError naming `name` and both digests when the file at `path` does not
    have the digest `expected`."""
    got = file_digest(path, expected.split(":", 1)[0])
    if got != expected:
        raise UserError(f"{name}: {got.replace(':', ' ', 1)} does not match the expected "
                        f"{expected.replace(':', ' ', 1)}")


def hub_digest(headers: Mapping[str, str]) -> str | None:
    """The digest the Hugging Face hub gives a file in its resolve response: the LFS
    object's SHA-256 (X-Linked-Etag), else the git blob id of a file kept in git (ETag);
    None when neither is there."""
    linked = headers.get("x-linked-etag", "").strip('"')
    if len(linked) == 64:
        return f"sha256:{linked}"
    etag = headers.get("etag", "").removeprefix("W/").strip('"')
    if len(etag) == 40:
        return f"gitblob:{etag}"
    return None
