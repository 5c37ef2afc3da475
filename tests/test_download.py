"""download-gutenberg against a real HTTP server on 127.0.0.1."""

import hashlib
import io
import json
import re
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest
import tqdm

from lstm_textgen import download
import download_gutenberg
from lstm_textgen.download import fetch
from lstm_textgen.errors import UserError
from conftest import book_body, gutenberg_file, write_params

BOOK = gutenberg_file(book_body(500))


def params_for(tmp, server, ids=(1,), paths=("/pg{id}.txt",)):
    write_params(tmp, download_gutenberg={"book_ids": list(ids), "mirrors": [server.url + p for p in paths]})


def test_downloads_byte_for_byte_with_a_manifest(server, in_tmp):
    server.files["/pg1.txt"] = BOOK
    server.files["/pg2.txt"] = BOOK[:100]
    params_for(in_tmp, server, ids=(1, 2))
    download_gutenberg.main()
    assert (in_tmp / "data/raw/pg1.txt").read_bytes() == BOOK
    manifest = json.loads((in_tmp / "data/raw/manifest.json").read_text())
    assert manifest == [
        {"id": 1, "url": server.url + "/pg1.txt", "bytes": len(BOOK), "sha256": hashlib.sha256(BOOK).hexdigest()},
        {"id": 2, "url": server.url + "/pg2.txt", "bytes": 100, "sha256": hashlib.sha256(BOOK[:100]).hexdigest()},
    ]
    assert sorted(p.name for p in (in_tmp / "data").iterdir()) == ["raw"]  # no temporary left over


def test_404_is_not_retried_and_every_url_is_named(server, in_tmp):
    params_for(in_tmp, server, ids=(1, 2), paths=("/a/pg{id}.txt", "/b/pg{id}.txt"))
    server.files["/a/pg1.txt"] = BOOK
    with pytest.raises(UserError) as err:
        download_gutenberg.main()
    message = str(err.value)
    assert "Gutenberg book 2" in message
    assert f"{server.url}/a/pg2.txt: HTTP 404" in message and f"{server.url}/b/pg2.txt: HTTP 404" in message
    assert server.hits == {"/a/pg1.txt": 1, "/a/pg2.txt": 1, "/b/pg2.txt": 1}
    assert not (in_tmp / "data/raw").exists()  # book 1 arrived, but the stage did not finish


def test_server_errors_are_retried(server, in_tmp):
    server.files["/pg1.txt"] = BOOK
    server.faults["/pg1.txt"] = [500]
    params_for(in_tmp, server)
    download_gutenberg.main()
    assert server.hits["/pg1.txt"] == 2
    assert (in_tmp / "data/raw/pg1.txt").read_bytes() == BOOK


def test_a_dropped_connection_is_retried_and_leaves_no_partial_file(server, tmp_path):
    server.files["/pg1.txt"] = BOOK
    server.faults["/pg1.txt"] = [("drop", 1000), ("drop", 10)]
    dest = tmp_path / "pg1.txt"
    assert fetch([server.url + "/pg1.txt"], dest, "book 1", backoff=0) == server.url + "/pg1.txt"
    assert server.hits["/pg1.txt"] == 3 and dest.read_bytes() == BOOK
    server.faults["/pg1.txt"] = [("drop", 1000)] * 2
    with pytest.raises(UserError, match=r"pg1.txt: .*after 2 attempts"):
        fetch([server.url + "/pg1.txt"], tmp_path / "again.txt", "book 1", attempts=2, backoff=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pg1.txt"]


def test_no_network_fails_after_retries(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=rf"could not download book 9; tried:\n  http://127.0.0.1:{port}/pg9.txt: "
                                        r"ConnectionError.*\(after 3 attempts\)\nCheck the network"):
        fetch([f"http://127.0.0.1:{port}/pg9.txt"], tmp_path / "pg9.txt", "book 9", attempts=3, backoff=0,
              hint="Check the network.")
    assert list(tmp_path.iterdir()) == []


def test_an_html_page_is_refused_and_the_next_mirror_tried(server, in_tmp):
    server.files["/b/pg1.txt"] = BOOK
    server.faults["/a/pg1.txt"] = ["html"]
    params_for(in_tmp, server, paths=("/a/pg{id}.txt", "/b/pg{id}.txt"))
    download_gutenberg.main()
    assert (in_tmp / "data/raw/pg1.txt").read_bytes() == BOOK
    server.faults["/a/pg1.txt"] = ["html"]
    params_for(in_tmp, server, paths=("/a/pg{id}.txt",))
    with pytest.raises(UserError, match=r"/a/pg1.txt: served an HTML page"):
        download_gutenberg.main()


@pytest.mark.parametrize("kind", ["directory", "url template"])
def test_gutenberg_mirror_goes_first_and_does_not_change_the_data(kind, server, in_tmp, monkeypatch):
    server.files["/pg1.txt"] = BOOK
    params_for(in_tmp, server)
    download_gutenberg.main()
    manifest = (in_tmp / "data/raw/manifest.json").read_bytes()
    mirror = in_tmp / "mirror"
    mirror.mkdir()
    (mirror / "pg1.txt").write_bytes(BOOK)
    server.files["/mirror/1.txt"] = BOOK
    monkeypatch.setenv("GUTENBERG_MIRROR", str(mirror) if kind == "directory" else server.url + "/mirror/{id}.txt")
    download_gutenberg.main()
    assert server.hits["/pg1.txt"] == 1  # the params' mirror was not asked again
    assert (in_tmp / "data/raw/manifest.json").read_bytes() == manifest
    assert (in_tmp / "data/raw/pg1.txt").read_bytes() == BOOK


def test_mirror_templates_need_an_id(server, in_tmp):
    write_params(in_tmp, download_gutenberg={"mirrors": [server.url + "/book.txt"]})
    with pytest.raises(UserError, match=r"download-gutenberg.mirrors entries need an \{id\} placeholder"):
        download_gutenberg.main()


# --- what is not a book, from any source ------------------------------------------------------

def test_an_html_body_is_refused_whatever_its_content_type_from_every_source(server, in_tmp, monkeypatch):
    """An HTML page sent as text/plain (BOM, blank line, lower-case doctype), or lying in a mirror
    directory, is refused; the next source is tried; a refused body is never written."""
    mirror = in_tmp / "mirror"
    mirror.mkdir()
    (mirror / "pg1.txt").write_bytes(b"\n<HTML><head><title>404</title></head></html>\n")
    server.files["/a/pg1.txt"] = server.files["/b/pg1.txt"] = BOOK
    server.faults["/a/pg1.txt"] = ["html-body"]
    params_for(in_tmp, server, paths=("/a/pg{id}.txt", "/b/pg{id}.txt"))
    monkeypatch.setenv("GUTENBERG_MIRROR", str(mirror))
    download_gutenberg.main()
    assert (in_tmp / "data/raw/pg1.txt").read_bytes() == BOOK
    assert server.hits == {"/a/pg1.txt": 1, "/b/pg1.txt": 1}  # the HTML page was not retried
    dest = in_tmp / "out" / "pg1.txt"
    server.faults["/a/pg1.txt"] = ["html-body"]
    with pytest.raises(UserError) as err:
        fetch([str(mirror / "pg1.txt"), server.url + "/a/pg1.txt"], dest, "book 1")
    assert f"{mirror / 'pg1.txt'}: an HTML page, not a plain-text file" in str(err.value)
    assert f"{server.url}/a/pg1.txt: served an HTML page, not a plain-text file" in str(err.value)
    assert list((in_tmp / "out").iterdir()) == []  # no file, no temporary


def test_an_empty_file_is_refused_at_download_by_name(server, in_tmp, monkeypatch):
    mirror = in_tmp / "mirror"
    mirror.mkdir()
    (mirror / "pg1.txt").write_bytes(b"")
    server.files["/a/pg1.txt"] = b"\xef\xbb\xbf \r\n"
    params_for(in_tmp, server, paths=("/a/pg{id}.txt",))
    monkeypatch.setenv("GUTENBERG_MIRROR", str(mirror))
    with pytest.raises(UserError) as err:
        download_gutenberg.main()
    assert f"{mirror / 'pg1.txt'}: an empty file (0 bytes)" in str(err.value)
    assert f"{server.url}/a/pg1.txt: served an empty file (only whitespace)" in str(err.value)
    assert "marker" not in str(err.value)
    assert server.hits == {"/a/pg1.txt": 1}
    assert not (in_tmp / "data/raw").exists() and list((in_tmp / "data").iterdir()) == []
    server.files["/b/pg1.txt"] = BOOK  # and with one more mirror, that one is used
    params_for(in_tmp, server, paths=("/a/pg{id}.txt", "/b/pg{id}.txt"))
    download_gutenberg.main()
    assert (in_tmp / "data/raw/pg1.txt").read_bytes() == BOOK


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_a_gutenberg_mirror_directory_that_is_not_there_is_reported_at_once(what, server, in_tmp, monkeypatch):
    server.files["/pg1.txt"] = BOOK
    params_for(in_tmp, server)
    mirror = in_tmp / "books"
    if what == "a file":
        mirror.write_text("not a directory")
    monkeypatch.setenv("GUTENBERG_MIRROR", str(mirror))
    problem = "is a file, not a directory" if what == "a file" else "does not exist"
    with pytest.raises(UserError, match=rf"^GUTENBERG_MIRROR is set to {re.escape(str(mirror))}, which {problem}: "
                                        r"point it at a directory"):
        download_gutenberg.main()
    assert server.hits == {}  # nothing was downloaded before the error
    assert not (in_tmp / "data/raw").exists()
    monkeypatch.setenv("GUTENBERG_MIRROR", "books")  # relative: the message shows where it looked
    with pytest.raises(UserError, match=rf"GUTENBERG_MIRROR is set to books \({re.escape(str(in_tmp / 'books'))}\)"):
        download_gutenberg.main()


@pytest.mark.parametrize("kind", ["unset", "directory", "url template", "http directory"])
def test_the_final_hint_says_what_gutenberg_mirror_points_at(kind, server, in_tmp, monkeypatch):
    params_for(in_tmp, server)
    mirror = in_tmp / "mirror"
    mirror.mkdir()
    value = {"unset": None, "directory": str(mirror), "url template": server.url + "/m/{id}.txt",
             "http directory": server.url + "/m"}[kind]
    if value:
        monkeypatch.setenv("GUTENBERG_MIRROR", value)
    with pytest.raises(UserError) as err:
        download_gutenberg.main()
    hint = str(err.value).splitlines()[-1]
    if kind == "unset":
        assert hint == download.MIRROR_HINT and "set GUTENBERG_MIRROR" in hint
    else:
        tried = {"directory": f"{mirror}/pg1.txt", "url template": f"{server.url}/m/1.txt",
                 "http directory": f"{server.url}/m/pg1.txt"}[kind]
        assert hint == (f"GUTENBERG_MIRROR is set to {value} and was tried first (as {tried}): check that it holds "
                        "pg1.txt, and check the network.")
        assert "set GUTENBERG_MIRROR" not in str(err.value)


def test_a_book_template_in_gutenberg_mirror_is_named_when_it_does_not_apply(server, in_tmp, monkeypatch):
    monkeypatch.setenv("GUTENBERG_MIRROR", server.url + "/m/{id}.txt")
    with pytest.raises(UserError) as err:
        fetch(download.with_mirror([server.url + "/h.csv"], "h.csv"), in_tmp / "h.csv", "the headlines CSV",
              hint=download.mirror_hint("h.csv"))
    assert str(err.value).endswith(f"GUTENBERG_MIRROR is set to {server.url}/m/{{id}}.txt, a template for books, "
                                   "so it was not used for h.csv. Check the network, or point GUTENBERG_MIRROR at "
                                   "a directory (local or http) holding h.csv.")


# --- retries: urllib3's Retry, short lines, no retry for names that do not resolve -----------

def retry_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "retrying" in line]


def test_a_host_name_that_does_not_resolve_is_not_retried(server, tmp_path, monkeypatch, capsys):
    lookups = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    server.files["/pg1.txt"] = BOOK
    url = "http://nonexistent.invalid/pg1.txt"
    assert fetch([url, server.url + "/pg1.txt"], tmp_path / "pg1.txt", "book 1", backoff=1) == server.url + "/pg1.txt"
    assert lookups.count("nonexistent.invalid") == 1  # one attempt: no retry (which would wait 0 + 2 + 4 s)
    assert retry_lines(capsys) == []
    with pytest.raises(UserError) as err:
        fetch([url], tmp_path / "pg2.txt", "book 2", backoff=1)
    assert str(err.value) == (f"could not download book 2; tried:\n  {url}: NameResolutionError: nonexistent.invalid "
                              "does not resolve (Name or service not known); not retried")
    assert lookups.count("nonexistent.invalid") == 2 and retry_lines(capsys) == []


def test_retry_lines_are_one_short_line_each(server, tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError):
        fetch([f"http://127.0.0.1:{port}/pg9.txt"], tmp_path / "pg9.txt", "book 9", attempts=3, backoff=0)
    server.files["/pg1.txt"] = BOOK
    server.faults["/pg1.txt"] = [500, ("drop", 10), "stall"]
    fetch([server.url + "/pg1.txt"], tmp_path / "pg1.txt", "book 1", timeout=0.5, backoff=0)
    assert retry_lines(capsys) == [
        f"book 9: http://127.0.0.1:{port}/pg9.txt: ConnectionError: could not connect (Connection refused); "
        "retrying in 0s (attempt 2 of 3)",
        f"book 9: http://127.0.0.1:{port}/pg9.txt: ConnectionError: could not connect (Connection refused); "
        "retrying in 0s (attempt 3 of 3)",
        f"book 1: {server.url}/pg1.txt: HTTP 500; retrying in 0s (attempt 2 of 4)",
        f"book 1: {server.url}/pg1.txt: ConnectionError: connection dropped after 10 bytes, {len(BOOK) - 10:,} short; "
        "retrying in 0s (attempt 3 of 4)",
        f"book 1: {server.url}/pg1.txt: ReadTimeout: no answer within 0.5s; retrying in 0s (attempt 4 of 4)",
    ]
    assert server.hits["/pg1.txt"] == 4 and (tmp_path / "pg1.txt").read_bytes() == BOOK


def test_backoff_doubles_and_retry_after_is_obeyed(server, tmp_path, capsys):
    server.files["/pg1.txt"] = BOOK
    server.faults["/pg1.txt"] = [503, 502, ("retry-after", 1)]
    started = time.monotonic()
    fetch([server.url + "/pg1.txt"], tmp_path / "pg1.txt", "book 1", backoff=0.1)
    assert time.monotonic() - started >= 1.2  # 0 s, then 0.2 s, then the 1 s the server asked for
    assert [line.split("; ")[-1] for line in retry_lines(capsys)] == [
        "retrying in 0s (attempt 2 of 4)", "retrying in 0.2s (attempt 3 of 4)",
        "retrying in 1s (Retry-After) (attempt 4 of 4)"]
    assert server.hits["/pg1.txt"] == 4
    server.faults["/pg1.txt"] = [503, ("retry-after", 0)]
    with pytest.raises(UserError, match=r"pg1.txt: HTTP 503 Service Unavailable \(after 2 attempts\)$"):
        fetch([server.url + "/pg1.txt"], tmp_path / "again.txt", "book 1", attempts=2, backoff=0)
    assert not (tmp_path / "again.txt").exists()


def test_fetch_retries_through_urllib3_retry():
    """The retry policy is urllib3's Retry, set on requests' adapter, not a loop of our own."""
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry
    assert issubclass(download._retry_class(), Retry) and issubclass(download._adapter_class(), HTTPAdapter)
    source = Path(download.__file__).read_text(encoding="utf-8")
    assert "adapter.max_retries = retries" in source and "time.sleep" not in source


def keep_alive(server) -> list:
    """Make `server` speak HTTP/1.1 (connections kept open between requests); the list of the
    connections it accepts, one entry each."""
    accepted = []

    class KeepAlive(server.httpd.RequestHandlerClass):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            accepted.append(self.client_address)

    server.httpd.RequestHandlerClass = KeepAlive
    return accepted


def test_a_stage_downloads_through_one_session_that_reuses_its_connections(server, in_tmp):
    books = {i: gutenberg_file(book_body(50, seed=i)) for i in range(1, 13)}
    for book_id, data in books.items():
        server.files[f"/pg{book_id}.txt"] = data
    params_for(in_tmp, server, ids=books)
    accepted = keep_alive(server)
    download_gutenberg.main()
    assert sum(server.hits.values()) == len(books)
    assert 1 <= len(accepted) <= download.POOL_SIZE  # a connection per download before
    for book_id, data in books.items():
        assert (in_tmp / f"data/raw/pg{book_id}.txt").read_bytes() == data


def test_downloads_sharing_a_session_each_retry_by_their_own_budget_and_label(server, in_tmp, capsys):
    for book_id in (1, 2, 3):
        server.files[f"/pg{book_id}.txt"] = BOOK
    server.faults["/pg1.txt"] = [503]
    server.faults["/pg2.txt"] = [503, 503]
    params_for(in_tmp, server, ids=(1, 2, 3))
    keep_alive(server)
    download_gutenberg.main()
    lines = retry_lines(capsys)
    assert sorted(line.split(": HTTP 503")[0] for line in lines) == [
        f"Gutenberg book 1: {server.url}/pg1.txt", *[f"Gutenberg book 2: {server.url}/pg2.txt"] * 2]
    assert sorted(line.split("(attempt ")[1] for line in lines) == ["2 of 4)", "2 of 4)", "3 of 4)"]
    assert server.hits == {"/pg1.txt": 2, "/pg2.txt": 3, "/pg3.txt": 1}


# --- many books: a bounded pool, one bar, and failures that keep what arrived ----------------

def count_overlaps(server, delay: float = 0.3) -> dict:
    """Make `server` wait `delay` s before each answer, and count the requests it holds at once."""
    seen, lock = {"now": 0, "most": 0}, threading.Lock()

    class Slow(server.httpd.RequestHandlerClass):
        def do_GET(self):
            with lock:
                seen["now"] += 1
                seen["most"] = max(seen["most"], seen["now"])
            try:
                time.sleep(delay)
                super().do_GET()
            finally:
                with lock:
                    seen["now"] -= 1

    server.httpd.RequestHandlerClass = Slow
    return seen


def test_many_books_download_at_once_under_one_progress_bar(server, in_tmp, monkeypatch):
    books = {i: gutenberg_file(book_body(300, seed=i)) for i in range(1, 11)}
    for book_id, data in books.items():
        server.files[f"/pg{book_id}.txt"] = data
    params_for(in_tmp, server, ids=books)
    overlaps = count_overlaps(server)
    bars = []

    class Recorded(tqdm.tqdm):  # shown even off a terminal, so that it counts
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": False, "file": io.StringIO()})
            bars.append(self)

    monkeypatch.setattr(tqdm, "tqdm", Recorded)
    download_gutenberg.main()
    assert overlaps["most"] == download.POOL_SIZE  # as many at once as the pool allows, no more
    assert len(bars) == 1 and bars[0].n == sum(map(len, books.values()))
    assert bars[0].desc.startswith("Gutenberg books: 10/10")
    for book_id, data in books.items():
        assert (in_tmp / f"data/raw/pg{book_id}.txt").read_bytes() == data
    manifest = json.loads((in_tmp / "data/raw/manifest.json").read_text())
    assert [entry["id"] for entry in manifest] == list(books)  # in the params' order, whatever finished first
    assert sorted(p.name for p in (in_tmp / "data").iterdir()) == ["raw"]


def test_failed_books_are_named_and_the_books_that_arrived_are_kept(server, in_tmp):
    for book_id in (1, 2, 4):
        server.files[f"/a/pg{book_id}.txt"] = BOOK
    params_for(in_tmp, server, ids=(1,), paths=("/a/pg{id}.txt",))
    download_gutenberg.main()
    previous = {p.name: p.read_bytes() for p in (in_tmp / "data/raw").iterdir()}
    params_for(in_tmp, server, ids=(1, 2, 3, 4, 5), paths=("/a/pg{id}.txt", "/b/pg{id}.txt"))
    with pytest.raises(UserError) as err:
        download_gutenberg.main()
    message = str(err.value)
    assert message.startswith("could not download 2 of 5 books:\ncould not download Gutenberg book 3; tried:\n")
    for book_id in (3, 5):
        assert f"could not download Gutenberg book {book_id}; tried:" in message
        for mirror in ("a", "b"):
            assert f"{server.url}/{mirror}/pg{book_id}.txt: HTTP 404" in message
    assert ("The other 3 arrived and are kept in data/checkpoints/download-gutenberg: the next run downloads only "
            "the 2 that failed. data/raw is left as it was.") in message
    assert message.splitlines()[-1] == download.MIRROR_HINT
    assert {p.name: p.read_bytes() for p in (in_tmp / "data/raw").iterdir()} == previous  # the last complete run's
    kept = in_tmp / "data/checkpoints/download-gutenberg"
    assert sorted(p.name for p in kept.iterdir()) == ["pg1.txt", "pg2.txt", "pg4.txt"]

    for book_id in (3, 5):  # the books appear on the second mirror: only they are downloaded
        server.files[f"/b/pg{book_id}.txt"] = BOOK
    hits = dict(server.hits)
    download_gutenberg.main()
    assert {path: n - hits.get(path, 0) for path, n in server.hits.items() if n != hits.get(path, 0)} == {
        "/a/pg3.txt": 1, "/b/pg3.txt": 1, "/a/pg5.txt": 1, "/b/pg5.txt": 1}
    manifest = json.loads((in_tmp / "data/raw/manifest.json").read_text())
    assert [entry["id"] for entry in manifest] == [1, 2, 3, 4, 5]
    assert all((in_tmp / f"data/raw/pg{i}.txt").read_bytes() == BOOK for i in range(1, 6))
    assert sorted(p.name for p in (in_tmp / "data").iterdir()) == ["raw"]  # no checkpoint left behind


# Texts of the user's own (download-gutenberg.texts): local paths and http(s) URLs, no markers.

ESSAY = "\ufeffAn essay of my own.\r\nIt has no Gutenberg markers at all.\r\n".encode("utf-8")


def texts_params(tmp, texts, book_ids=()):
    write_params(tmp, download_gutenberg={"book_ids": list(book_ids), "texts": texts})


def test_own_texts_from_a_path_and_a_url_are_kept_byte_for_byte_with_books(server, in_tmp):
    server.files["/pg1.txt"] = BOOK
    server.files["/essays/mine.txt"] = ESSAY
    (in_tmp / "notes.txt").write_bytes(b"local notes\n")
    write_params(in_tmp, download_gutenberg={"book_ids": [1], "mirrors": [server.url + "/pg{id}.txt"], "texts": [
        "notes.txt", {"source": server.url + "/essays/mine.txt", "sha256": hashlib.sha256(ESSAY).hexdigest()}]})
    download_gutenberg.main()
    manifest = json.loads((in_tmp / "data/raw/manifest.json").read_text())
    assert [e.get("id") for e in manifest] == [1, None, None]  # books first, then texts, in the params' order
    local, remote = manifest[1:]
    assert local["text"] == "notes.txt" and remote["text"] == server.url + "/essays/mine.txt"
    assert (in_tmp / "data/raw" / local["file"]).read_bytes() == b"local notes\n"
    assert (in_tmp / "data/raw" / remote["file"]).read_bytes() == ESSAY
    assert remote["file"].endswith("-mine.txt") and remote["sha256"] == hashlib.sha256(ESSAY).hexdigest()
    assert local["file"] != remote["file"] and remote["bytes"] == len(ESSAY)


def test_a_text_whose_bytes_are_not_its_pinned_sha256_is_refused_naming_both(server, in_tmp):
    server.files["/mine.txt"] = ESSAY
    texts_params(in_tmp, [{"source": server.url + "/mine.txt", "sha256": "0" * 64}])
    with pytest.raises(UserError) as err:
        download_gutenberg.main()
    message = str(err.value)
    assert f"{server.url}/mine.txt has sha256 {hashlib.sha256(ESSAY).hexdigest()}, not the {'0' * 64}" in message
    assert "download-gutenberg.texts" in message
    assert not (in_tmp / "data/raw").exists()
    assert not (in_tmp / "data/checkpoints").exists()  # not kept for the next run either


@pytest.mark.parametrize("texts, expected", [
    (["missing.txt"], r"could not download text missing.txt; tried:\n  missing.txt: no such file\n.*project root"),
    (["/empty"], r"/empty: served an empty file"),
    (["/page"], r"/page: served an HTML page"),
    ([{"source": "a.txt", "sha256": "abc"}], r"download-gutenberg.texts = .*item 0 has a sha256 that is not 64 hex"),
    ([{"path": "a.txt"}], r"download-gutenberg.texts = .*item 0 must be a path or an http\(s\) URL"),
    ([], r"book_ids and texts are both empty"),
])
def test_bad_texts_get_clear_errors(server, in_tmp, texts, expected):
    server.files["/empty"] = b""
    server.faults["/page"] = ["html"] * 4
    texts_params(in_tmp, [server.url + t if isinstance(t, str) and t.startswith("/") else t for t in texts])
    with pytest.raises(UserError, match=expected):
        download_gutenberg.main()
    assert not (in_tmp / "data/raw").exists()


def test_a_text_listed_twice_is_read_once_with_its_pin_and_two_pins_are_refused(in_tmp):
    (in_tmp / "notes.txt").write_bytes(b"local notes\n")
    pin = hashlib.sha256(b"local notes\n").hexdigest()
    texts_params(in_tmp, ["notes.txt", {"source": "./notes.txt", "sha256": pin}])
    download_gutenberg.main()
    manifest = json.loads((in_tmp / "data/raw/manifest.json").read_text())
    assert [e["text"] for e in manifest] == ["notes.txt"]
    texts_params(in_tmp, ["notes.txt", {"source": "./notes.txt", "sha256": "0" * 64}])
    with pytest.raises(UserError, match=r"pins: the file changed"):  # the pin of either mention holds
        download_gutenberg.main()
    texts_params(in_tmp, [{"source": "notes.txt", "sha256": pin}, {"source": "notes.txt", "sha256": "0" * 64}])
    with pytest.raises(UserError, match=r"lists notes.txt twice with different sha256"):
        download_gutenberg.main()


def test_texts_are_fetched_afresh_after_a_failed_run_where_books_are_kept(server, in_tmp):
    """A book that arrived waits for the next run; a local text may have been edited meanwhile."""
    server.files["/pg1.txt"] = BOOK
    (in_tmp / "notes.txt").write_bytes(b"first draft\n")
    write_params(in_tmp, download_gutenberg={"book_ids": [1, 2], "mirrors": [server.url + "/pg{id}.txt"],
                                             "texts": ["notes.txt"]})
    with pytest.raises(UserError, match="could not download 1 of 3 files"):
        download_gutenberg.main()  # book 2 is missing
    (in_tmp / "notes.txt").write_bytes(b"second draft\n")
    server.files["/pg2.txt"] = BOOK
    download_gutenberg.main()
    notes = json.loads((in_tmp / "data/raw/manifest.json").read_text())[2]
    assert (in_tmp / "data/raw" / notes["file"]).read_bytes() == b"second draft\n"
    assert server.hits["/pg1.txt"] == 1  # the book was kept


@pytest.mark.parametrize("kind, compress", [
    ("gzip", lambda b: __import__("gzip").compress(b)), ("bz2", lambda b: __import__("bz2").compress(b)),
    ("xz", lambda b: __import__("lzma").compress(b)), ("zip", None)])
def test_compressed_text_served_as_plain_text_is_refused_by_name(server, in_tmp, kind, compress):
    """A compressed body with no Content-Encoding, as `.txt`, from a URL or a local path: refused,
    naming the format, and never written to data/raw as if it were text."""
    if compress is None:
        with zipfile.ZipFile(in_tmp / "book.zip", "w") as archive:
            archive.writestr("pg1.txt", BOOK)
        packed = (in_tmp / "book.zip").read_bytes()
    else:
        packed = compress(BOOK)
    server.files["/pg1.txt"] = packed
    (in_tmp / "local.txt").write_bytes(packed)
    for texts in ([server.url + "/pg1.txt"], ["local.txt"]):
        texts_params(in_tmp, texts)
        with pytest.raises(UserError, match=rf"a {kind}-compressed file, not plain text; decompress it first"):
            download_gutenberg.main()
        assert not (in_tmp / "data/raw").exists() and not (in_tmp / "data/checkpoints").exists()


def test_one_book_that_arrived_is_named_in_the_singular(server, in_tmp):
    server.files["/a/pg1.txt"] = BOOK
    params_for(in_tmp, server, ids=(1, 2), paths=("/a/pg{id}.txt",))
    with pytest.raises(UserError, match="The other book arrived and is kept in data/checkpoints"):
        download_gutenberg.main()


def test_the_hint_fits_the_failure(server, in_tmp):
    """An empty file that exists is not told to "give an existing file"; a text whose bytes are
    not its pin gets no network hint."""
    (in_tmp / "empty.txt").write_bytes(b"")
    texts_params(in_tmp, ["empty.txt"])
    with pytest.raises(UserError) as err:
        download_gutenberg.main()
    assert "an empty file" in str(err.value) and "give an existing file" not in str(err.value)
    assert str(err.value).splitlines()[-1].startswith("Check what empty.txt holds")
    server.files["/mine.txt"] = ESSAY
    texts_params(in_tmp, [{"source": server.url + "/mine.txt", "sha256": "0" * 64}])
    with pytest.raises(UserError) as err:
        download_gutenberg.main()
    assert "network" not in str(err.value).lower() and "the file changed" in str(err.value)
