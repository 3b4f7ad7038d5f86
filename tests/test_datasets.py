"""The data command fetches small fixture files from a local HTTP server on 127.0.0.1
(never the internet): checked against their digests, resumed after a broken
connection, hub files checked against the hub's digest, and the flags it prints read
by the project's own readers. Offline it says what to download and where to put it."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from pretty_jax.core.errors import UserError
from pretty_jax.datasets import catalog, references
from pretty_jax.datasets.catalog import CATALOG
from pretty_jax.datasets.fetch import Fetcher
from pretty_jax.tasks.crosssum import read_crosssum
from pretty_jax.tasks.dictionary import read_muse
from pretty_jax.tasks.flores import FloresTask
from pretty_jax.tasks.pos import read_tagged

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SENTENCES = {"eng": ["The cat sleeps.", "It rains.", "Good morning."],
             "fra": ["Le chat dort.", "Il pleut.", "Bonjour."]}
CONLLU = ("# text = Le chat dort.\n1\tLe\tle\tDET\t_\t_\t2\tdet\t_\t_\n2\tchat\tchat\tNOUN\t_\t_\t3\tnsubj\t_\t_\n"
          "3\tdort\tdormir\tVERB\t_\t_\t0\troot\t_\t_\n\n")


def _tar(members: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _sha256(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def _gitblob(payload: bytes) -> str:
    return "gitblob:" + hashlib.sha1(b"blob %d\0" % len(payload) + payload).hexdigest()


FLORES_TAR = _tar({f"flores101_dataset/{split}/{lang}.{split}": ("\n".join(lines) + "\n").encode()
                   for split in ("dev", "devtest") for lang, lines in SENTENCES.items()}, "w:gz")
MUSE = {iso: f"the {word}\ncat {cat}\n".encode() for iso, word, cat in
        (("zh", "这", "猫"), ("de", "die", "Katze"), ("fr", "le", "chat"), ("ja", "その", "猫"), ("ru", "этот", "кошка"))}
CONLLU_BYTES = CONLLU.encode()
CROSSSUM = {target: _tar({f"./english-{name}_{split}.jsonl": json.dumps(
    {"source_url": "u", "target_url": "v", "text": f"{split} article", "summary": f"{name} summary"}).encode() + b"\n"
    for split in ("train", "val", "test")}, "w:bz2") for target, name in (("zho_simpl", "chinese_simplified"),
                                                                          ("fra", "french"))}


def _origin_paths() -> dict[str, bytes]:
    """URL path -> bytes of every fixture, at the path its real file has below its origin."""
    served = {"/flores101/dataset/flores101_dataset.tar.gz": FLORES_TAR}
    served |= {f"/arrival/dictionaries/en-{iso}.txt": payload for iso, payload in MUSE.items()}
    served |= {"/" + f.path: CONLLU_BYTES for f in CATALOG["ud"].files}
    return served


class FixtureServer:
    """Serves `files` (URL path -> bytes) with Range support, and hub files
    (/datasets/<repo>/resolve/<revision>/<path>) as the hub does: a relative redirect,
    then the hub's digest and commit headers with a redirect to a second server (the
    "CDN", another port).

    break_once: paths whose first response sends half the body, then closes.
    ignore_range: answer every request with the whole file.
    corrupt_hub: hub paths whose bytes differ from the digest announced.
    """

    def __init__(self):
        self.files: dict[str, bytes] = _origin_paths()
        self.hub: dict[str, bytes] = {}
        self.break_once: set[str] = set()
        self.ignore_range = False
        self.corrupt_hub: set[str] = set()
        self.requests: list[tuple[int, str, str | None, str | None]] = []  # port, path, Range, Authorization
        self.main, self.cdn = self._start(), self._start()
        self.url = f"http://127.0.0.1:{self.main.server_port}"

    def _start(self) -> http.server.ThreadingHTTPServer:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def close(self) -> None:
        for server in (self.main, self.cdn):
            server.shutdown()
            server.server_close()

    def _handler(self):
        fixture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                port = self.server.server_port
                fixture.requests.append((port, self.path, self.headers.get("Range"),
                                         self.headers.get("Authorization")))
                if self.path.startswith("/datasets/"):  # the hub's first answer: a relative redirect
                    self.send_response(307)
                    self.send_header("Location", "/api/resolve-cache/" + self.path.split("/resolve/", 1)[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path.startswith("/api/resolve-cache/"):
                    return self._hub_redirect()
                payload = fixture.hub.get(self.path[len("/cdn"):]) if self.path.startswith("/cdn/") else (
                    fixture.files.get(self.path))
                if payload is None:
                    self.send_error(404)
                    return
                if self.path.startswith("/cdn/") and self.path[len("/cdn"):] in fixture.corrupt_hub:
                    payload = payload[::-1]
                self._send(payload)

            def _hub_redirect(self):
                path = "/" + self.path.removeprefix("/api/resolve-cache/").split("/", 1)[1]
                if path not in fixture.hub:
                    self.send_error(404)
                    return
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{fixture.cdn.server_port}/cdn{path}")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", f'"{hashlib.sha256(fixture.hub[path]).hexdigest()}"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(self, payload: bytes):
                start = 0
                ranged = self.headers.get("Range")
                if ranged and not fixture.ignore_range:
                    start = int(ranged.removeprefix("bytes=").rstrip("-"))
                    if start >= len(payload):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(payload)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                else:
                    self.send_response(200)
                body = payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in fixture.break_once:
                    fixture.break_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


@pytest.fixture
def server():
    fixture = FixtureServer()
    yield fixture
    fixture.close()


def _pinned_to_fixtures() -> dict[str, catalog.Dataset]:
    """The catalogue with the pinned digests of Flores-101 and UD replaced by the
    fixtures' (the real pins refuse the fixtures, see the corrupted-download test)."""
    flores = CATALOG["flores101"]
    ud = CATALOG["ud"]
    ud_files = tuple(dataclasses.replace(f, digest=(_sha256 if f.digest.startswith("sha256") else _gitblob)(CONLLU_BYTES))
                     for f in ud.files)
    return {
        "flores101": dataclasses.replace(flores, files=(dataclasses.replace(flores.files[0], digest=_sha256(FLORES_TAR)),)),
        "ud": dataclasses.replace(ud, files=ud_files),
        "muse": CATALOG["muse"],
        "crosssum": CATALOG["crosssum"],
    }


def _fetch(cache: Path, server: FixtureServer, datasets, token: str | None = None) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    fetcher = Fetcher(cache, server.url, token, say=notes.append)
    try:
        return fetcher.fetch(datasets), notes
    finally:
        fetcher.close()


def _flag_paths(line: str) -> dict[str, str]:
    """{flag: value} of one printed line "<dataset>: --a=x --b=y"."""
    return dict(part[2:].split("=", 1) for part in line.split(": ", 1)[1].split())


def test_fetched_data_is_read_through_the_printed_flags(server, tmp_path):
    datasets = _pinned_to_fixtures()
    for path, payload in zip(("/data/english-chinese_simplified_CrossSum.tar.bz2",
                              "/data/english-french_CrossSum.tar.bz2"), CROSSSUM.values()):
        server.hub[path] = payload
    lines, notes = _fetch(tmp_path / "cache", server, list(datasets.values()))

    flags = {line.split(":", 1)[0]: _flag_paths(line) for line in lines}
    task = FloresTask(Path(flags["flores101"]["data"]), "devtest", "eng", "fra")
    assert [(e.source, e.reference) for e in task.examples()] == list(zip(SENTENCES["eng"], SENTENCES["fra"]))
    dictionary = flags["muse"]["dictionary"].format(source_iso="en", target_iso="de")
    assert read_muse(Path(dictionary))["cat"] == ("Katze",)
    for template in flags["ud"].values():
        assert read_tagged(Path(template.format(target_iso="zh"))) == [(("Le", "chat", "dort"), ("DET", "NOUN", "VERB"))]
    summaries = flags["crosssum"]["data"].format(source_lang="eng", target_lang="fra")
    assert read_crosssum(Path(summaries)) == [("test article", "french summary")]

    assert "flores101/flores101_dataset.tar.gz: 4" not in notes  # sizes are printed with separators
    assert any(n.startswith("flores101/flores101_dataset.tar.gz:") and n.endswith("pinned digest") for n in notes)
    assert any(n.startswith("crosssum/english-french_CrossSum.tar.bz2:") and n.endswith("the hub's digest") for n in notes)
    record = json.loads((tmp_path / "cache" / "crosssum" / "fetched.json").read_text())
    assert record["revision"] == COMMIT
    assert record["files"]["english-french_CrossSum.tar.bz2"]["sha256"] == _sha256(CROSSSUM["fra"])
    # Every file of the dataset after the first came from the commit the first resolved to.
    hub_paths = [path for _, path, _, _ in server.requests if path.startswith("/datasets/")]
    assert hub_paths[0].split("/resolve/")[1].startswith("main/")
    assert all(path.split("/resolve/")[1].startswith(COMMIT + "/") for path in hub_paths[1:])


def _run(*flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(ROOT)) | (env or {})
    return subprocess.run([sys.executable, "-m", "pretty_jax.data", *flags], capture_output=True, text=True,
                          cwd=ROOT, env=environment, timeout=120)


def test_the_data_command_prints_the_flags_and_a_second_run_downloads_nothing(server, tmp_path):
    cache = tmp_path / "cache"
    first = _run("--datasets=muse", f"--cache_dir={cache}", f"--mirror={server.url}")
    assert first.returncode == 0, first.stderr
    expected = f"  muse: --dictionary={cache}/muse/{{source_iso}}-{{target_iso}}.txt"
    assert first.stdout.splitlines()[-1] == expected
    assert f"muse/en-de.txt: {len(MUSE['de'])} bytes, not checked: no digest is published" in first.stdout
    assert (cache / "muse" / "en-de.txt").read_bytes() == MUSE["de"]
    assert "muse/en-de.txt: 1/1 KiB" in first.stderr  # progress, also when not on a terminal
    requests = len(server.requests)

    second = _run("--datasets=muse", f"--cache_dir={cache}", f"--mirror={server.url}")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == expected
    assert len(server.requests) == requests


def test_a_download_that_fails_its_digest_is_refused_naming_the_file_and_both_digests(server, tmp_path):
    cache = tmp_path / "cache"
    result = _run("--datasets=flores101", f"--cache_dir={cache}", f"--mirror={server.url}")
    assert result.returncode == 2
    url = f"{server.url}/flores101/dataset/flores101_dataset.tar.gz"
    assert result.stderr.splitlines()[-1] == (
        f"error: flores101/flores101_dataset.tar.gz (from {url}): sha256 {hashlib.sha256(FLORES_TAR).hexdigest()} "
        "does not match the expected sha256 49fa80207b09fcc0eca8253ed13303b3a0ae0f16081af862601c73ac76f2cba6; "
        "the download was removed. Run again, or fetch it by hand and compare"
    )
    assert sorted(p.name for p in (cache / "flores101").iterdir()) == []


@pytest.mark.parametrize("ignore_range", [False, True], ids=["range", "server-ignores-range"])
def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path, ignore_range):
    path = "/flores101/dataset/flores101_dataset.tar.gz"
    server.break_once.add(path)
    server.ignore_range = ignore_range
    datasets = [_pinned_to_fixtures()["flores101"]]
    partial = tmp_path / "cache" / "flores101" / "flores101_dataset.tar.gz.partial"
    with pytest.raises(UserError, match=r"the connection broke|arrived; run the same command again to resume"):
        _fetch(tmp_path / "cache", server, datasets)
    assert partial.read_bytes() == FLORES_TAR[: len(FLORES_TAR) // 2]

    lines, _ = _fetch(tmp_path / "cache", server, datasets)
    ranges = [ranged for _, requested, ranged, _ in server.requests if requested == path]
    assert ranges == [None, f"bytes={len(FLORES_TAR) // 2}-"]
    assert (tmp_path / "cache" / "flores101" / "flores101_dataset.tar.gz").read_bytes() == FLORES_TAR
    assert not partial.exists()
    assert FloresTask(Path(_flag_paths(lines[0])["data"]), "dev", "eng", "fra").examples()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_offline_it_says_what_to_download_and_where_then_takes_files_put_there(tmp_path):
    cache = tmp_path / "cache"
    port = _closed_port()
    result = _run("--datasets=muse,ud", f"--cache_dir={cache}", f"--mirror=http://127.0.0.1:{port}")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"error: no network: cannot reach 127.0.0.1:{port} ([Errno 111] Connection refused). Where a network "
        f"exists, download each file below and put it at its path under {cache}, then run this command again "
        "(it checks them):")
    assert lines[1] == "  muse/en-zh.txt      https://dl.fbaipublicfiles.com/arrival/dictionaries/en-zh.txt"
    assert lines[6] == ("  ud/fr-dev.conllu    "
                        "https://raw.githubusercontent.com/UniversalDependencies/UD_French-GSD/r2.16/fr_gsd-ud-dev.conllu")
    assert len(lines) == 1 + 5 + 6

    for line in lines[1:6]:  # the MUSE files, put where the message says
        relative, url = line.split()
        (cache / relative).write_bytes(MUSE[url[-6:-4]])
    again = _run("--datasets=muse", f"--cache_dir={cache}", f"--mirror=http://127.0.0.1:{port}")
    assert again.returncode == 0, again.stderr
    assert "muse/en-fr.txt: placed by hand, not checked: no digest is published" in again.stdout
    assert again.stdout.splitlines()[-1] == f"  muse: --dictionary={cache}/muse/{{source_iso}}-{{target_iso}}.txt"


def test_a_file_put_in_the_cache_by_hand_that_fails_its_pin_is_refused_and_kept(server, tmp_path):
    cache = tmp_path / "cache"
    datasets = [_pinned_to_fixtures()["ud"]]
    _fetch(cache, server, [CATALOG["muse"]])  # the cache exists, as after an offline attempt
    (cache / "ud").mkdir()
    (cache / "ud" / "fr-dev.conllu").write_text("my own notes\n")
    with pytest.raises(UserError) as refused:
        _fetch(cache, server, datasets)
    mine = hashlib.sha256(b"my own notes\n").hexdigest()
    assert str(refused.value) == (
        f"{cache}/ud/fr-dev.conllu (not written by pretty_jax, kept as it is): sha256 {mine} does not match the "
        f"expected sha256 {hashlib.sha256(CONLLU_BYTES).hexdigest()}")
    assert (cache / "ud" / "fr-dev.conllu").read_text() == "my own notes\n"


def test_hub_files_are_checked_against_the_hubs_digest_and_the_token_stays_with_the_hub(server, tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as parquet

    flores_plus = CATALOG["flores_plus"]
    for file in flores_plus.files:
        language = Path(file.path).stem
        texts = SENTENCES["fra" if language == "fra_Latn" else "eng"]
        buffer = io.BytesIO()
        parquet.write_table(pyarrow.table({"id": [1, 2, 3], "text": texts}), buffer)
        server.hub["/" + file.path] = buffer.getvalue()
    server.corrupt_hub.add("/devtest/jpn_Jpan.parquet")
    with pytest.raises(UserError, match=r"flores_plus/devtest/jpn_Jpan.parquet \(from .*\): sha256 \w+ does not "
                                        r"match the expected sha256 \w+; the download was removed"):
        _fetch(tmp_path / "cache", server, [flores_plus], token="hf_secret")
    server.corrupt_hub.clear()
    lines, _ = _fetch(tmp_path / "cache", server, [flores_plus], token="hf_secret")

    task = FloresTask(Path(_flag_paths(lines[0])["data"]), "devtest", "eng", "fra")
    assert [e.reference for e in task.examples()] == SENTENCES["fra"]
    tokens = {(port == server.main.server_port, auth) for port, _, _, auth in server.requests}
    assert tokens == {(True, "Bearer hf_secret"), (False, None)}


def test_data_references_name_paths_in_the_cache_or_the_command_that_fetches_them(server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=r"^--dictionary=data:muse/x.txt: muse is not in the data cache .* yet; "
                                        r"fetch it with: python -m pretty_jax.data --datasets=muse$"):
        references.resolve_data_reference("data:muse/x.txt", "--dictionary", cache)
    _fetch(cache, server, [CATALOG["muse"]])
    template = references.resolve_data_reference("data:muse/{source_iso}-{target_iso}.txt", "--dictionary", cache)
    assert read_muse(Path(template.format(source_iso="en", target_iso="fr")))["the"] == ("le",)
    assert references.resolve_data_reference("/data/muse/en-fr.txt", "--dictionary", cache) == "/data/muse/en-fr.txt"
    with pytest.raises(UserError, match=r"^--data=data:wmt: no dataset 'wmt'; the data command knows flores101, "):
        references.resolve_data_reference("data:wmt", "--data", cache)
