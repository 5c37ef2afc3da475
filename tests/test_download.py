"""download-gutenberg against a real HTTP server on 127.0.0.1."""

import hashlib
import json
import socket

import pytest

import download_gutenberg
from common import UserError, fetch
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
