"""download-gutenberg.catalog: books chosen from Project Gutenberg's catalogue (pg_catalog.csv),
a small catalogue made here and served, with the books, from 127.0.0.1."""

import csv
import io
import json

import pytest

import download_gutenberg
from conftest import book_body, gutenberg_file, sh, write_params
from lstm_textgen.catalog import chosen_books, read_catalog
from lstm_textgen.errors import UserError
from test_pipeline import repro

COLUMNS = ["Text#", "Type", "Issued", "Title", "Language", "Authors", "Subjects", "LoCC", "Bookshelves"]
ROWS = [  # Text#, Type, Language, Subjects, Bookshelves: out of number order, as a catalogue may be
    (12, "Text", "en", "Fantasy fiction; Children's stories", "Category: Novels; Children's Literature"),
    (3, "Text", "en", "Sea stories", "Category: Novels; Best Books Ever Listings"),
    (7, "Sound", "en", "Fantasy fiction", "Category: Novels"),                   # an audio book: never taken
    (5, "Text", "enm", "Poetry, Middle English", "Category: Poetry"),            # Middle English: not "en"
    (9, "Text", "fr; en", "Science fiction", "Category: Novels; Science-Fiction & Fantasy"),
    (20, "Text", "de", "Fantasy fiction", "Category: Novels"),
    (15, "Text", "en", "England -- Social life and customs -- Fiction", "Category: Novels; Best Books Ever Listings"),
]


def catalogue(rows=ROWS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for number, kind, language, subjects, shelves in rows:
        writer.writerow([number, kind, "2001-01-01", f"Book {number}, a title", language, "Someone, 1800-1870",
                         subjects, "PR", shelves])
    return out.getvalue().encode("utf-8")


@pytest.fixture
def table(tmp_path):
    (tmp_path / "pg_catalog.csv").write_bytes(catalogue())
    return read_catalog(tmp_path / "pg_catalog.csv", "the test", ["Language", "Subjects", "Bookshelves"])


@pytest.mark.parametrize("where, expected", [
    ({}, [3, 5, 9, 12, 15, 20]),                                     # Type Text only, in number order
    ({"Language": "en"}, [3, 9, 12, 15]),                            # a code matches whole: not enm
    ({"Language": ["EN", "de"]}, [3, 9, 12, 15, 20]),                # any of a list, whatever the case
    ({"Subjects": "fiction"}, [9, 12, 15, 20]),                      # a substring, whatever the case
    ({"Language": "en", "Bookshelves": "best books"}, [3, 15]),      # every column named must match
])
def test_the_catalogue_chooses_texts_by_column(table, where, expected):
    assert chosen_books(table, where, None, None, "the test") == (expected, len(expected))


def test_a_count_takes_the_first_by_number_or_a_seeded_sample(table):
    assert chosen_books(table, {}, 2, None, "t") == ([3, 5], 6)
    sample = chosen_books(table, {}, 3, 1, "t")
    assert sample == chosen_books(table, {}, 3, 1, "t") and sample[1] == 6  # a seed is a sample
    assert sample[0] == sorted(sample[0]) and set(sample[0]) <= {3, 5, 9, 12, 15, 20}
    assert {tuple(chosen_books(table, {}, 3, seed, "t")[0]) for seed in range(10)} != {tuple(sample[0])}
    assert chosen_books(table, {}, 100, 4, "t") == ([3, 5, 9, 12, 15, 20], 6)  # fewer match: all of them


def test_an_unknown_column_and_a_filter_that_matches_nothing_are_one_clear_error(table, tmp_path):
    with pytest.raises(UserError, match=r"^params.yaml: download-gutenberg.catalog.where names the column 'Subject' "
                                        r"\(did you mean 'Subjects'\?\), which the catalogue from the test does not "
                                        r"have; its columns: Text#, Type, Issued"):
        read_catalog(tmp_path / "pg_catalog.csv", "the test", ["Language", "Subject"])
    assert list(read_catalog(tmp_path / "pg_catalog.csv", "t", ["Language"]).columns) == ["Text#", "Type", "Language"]
    with pytest.raises(UserError, match=r"^params.yaml: download-gutenberg.catalog matches no book of Type Text in "
                                        r"the catalogue from the test \(Language 'la'\); loosen"):
        chosen_books(table, {"Language": "la"}, None, None, "the test")


@pytest.mark.parametrize("content, problem", [
    (b'Text#,Type,Title\n1,Text,"an open quote\n2,Text,x\n', r"is not a CSV file that can be read \(.*\)"),
    (b"", r"is not a CSV file that can be read"),
    ("Text#,Type\n1,Text\n".encode("utf-16"), r"is not a CSV file that can be read"),
    (b"id,kind,title\n1,Text,x\n", r"has no Text# or Type column \(its columns: id, kind, title\): it is not "),
    (b"Text#,Type\n1,Text\nabc,Text\n", r"has rows whose Text# is not an eBook number: line 3 \('abc'\)"),
])
def test_a_file_that_is_not_the_catalogue_is_one_clear_error(tmp_path, content, problem):
    (tmp_path / "pg_catalog.csv").write_bytes(content)
    with pytest.raises(UserError, match=rf"^the catalogue from http://x/pg_catalog.csv {problem}"):
        read_catalog(tmp_path / "pg_catalog.csv", "http://x/pg_catalog.csv")


def catalogue_params(tmp, server, catalog, book_ids=(1,)):
    write_params(tmp, download_gutenberg={"book_ids": list(book_ids), "mirrors": [server.url + "/pg{id}.txt"],
                                          "catalog": catalog})


def serve_books(server, numbers):
    for number in numbers:
        server.files[f"/pg{number}.txt"] = gutenberg_file(book_body(300, seed=number))


def test_the_stage_downloads_the_books_the_catalogue_chooses_beside_book_ids(server, in_tmp, capsys):
    server.files["/feeds/pg_catalog.csv"] = catalogue()
    serve_books(server, [1, 3, 9, 12, 15])
    catalogue_params(in_tmp, server, {"url": server.url + "/feeds/pg_catalog.csv", "where": {"Language": "en"},
                                      "count": 3}, book_ids=(1, 9))
    download_gutenberg.main()
    manifest = json.loads((in_tmp / "data/raw/manifest.json").read_text())
    assert [(e["id"], e.get("chosen_by")) for e in manifest] == [(1, None), (9, None), (3, "catalog"), (12, "catalog")]
    assert (in_tmp / "data/raw/pg12.txt").read_bytes() == server.files["/pg12.txt"]
    assert sorted(p.name for p in (in_tmp / "data").iterdir()) == ["raw"]  # the catalogue is not kept
    assert not (in_tmp / "data/raw/pg_catalog.csv").exists()
    assert "4 books of Type Text match; taking the first 3 (1 of them in book_ids already)" in capsys.readouterr().err


def test_gutenberg_mirror_serves_the_catalogue_first(server, in_tmp, monkeypatch):
    mirror = in_tmp / "mirror"
    mirror.mkdir()
    (mirror / "pg_catalog.csv").write_bytes(catalogue())
    for number in (3, 9):
        (mirror / f"pg{number}.txt").write_bytes(gutenberg_file(book_body(300, seed=number)))
    monkeypatch.setenv("GUTENBERG_MIRROR", str(mirror))
    catalogue_params(in_tmp, server, {"url": server.url + "/feeds/pg_catalog.csv", "where": {"Language": "en"},
                                      "count": 2}, book_ids=())
    download_gutenberg.main()
    assert [e["id"] for e in json.loads((in_tmp / "data/raw/manifest.json").read_text())] == [3, 9]
    assert server.hits == {}  # nothing came from the catalogue's URL or the mirrors' templates


@pytest.mark.parametrize("catalog, problem", [
    ("en", r"must be null or \{where: "),
    ({"where": {"Language": "en"}, "cout": 3}, r"has no key 'cout' \(known: where, count, sample_seed, url\)"),
    ({"where": {"Language": ""}}, r"where \{<column>: <text or list of texts>\}"),
    ({"where": {}, "count": 0}, r"count must be a whole number > 0, or null"),
    ({"where": {}, "sample_seed": 3}, r"sample_seed needs a count"),
    ({"count": 3, "sample_seed": 2 ** 32}, r"sample_seed must be null, or a whole number >= 0 and < 2\*\*32"),
    ({"where": {"Type": "Sound"}}, r"where cannot filter Type: the books are Type Text"),
])
def test_bad_catalog_params_are_named_before_anything_is_fetched(server, in_tmp, catalog, problem):
    catalogue_params(in_tmp, server, catalog)
    with pytest.raises(UserError, match=rf"^params.yaml: download-gutenberg.catalog = .* {problem}"):
        download_gutenberg.main()
    assert server.hits == {} and not (in_tmp / "data").exists()


def test_a_bad_catalogue_fails_the_stage_and_leaves_the_data_as_it_was(server, in_tmp):
    server.files["/pg_catalog.csv"] = catalogue()
    serve_books(server, [1, 3])
    catalogue_params(in_tmp, server, {"url": server.url + "/pg_catalog.csv", "count": 1})
    download_gutenberg.main()
    before = (in_tmp / "data/raw/manifest.json").read_bytes()
    data = {p: p.read_bytes() for p in (in_tmp / "data").rglob("*") if p.is_file()}
    server.files["/pg_catalog.csv"] = b"id,kind\n1,Text\n"
    with pytest.raises(UserError, match=r"has no Text# or Type column"):
        download_gutenberg.main()
    del server.files["/pg_catalog.csv"]
    with pytest.raises(UserError, match=r"could not download the catalogue; tried:\n  http://127.0.0.1:\d+/pg_catalog"
                                        r".csv: HTTP 404"):
        download_gutenberg.main()
    assert (in_tmp / "data/raw/manifest.json").read_bytes() == before
    assert {p: p.read_bytes() for p in (in_tmp / "data").rglob("*") if p.is_file()} == data  # every file as it was
    assert sorted(p.name for p in (in_tmp / "data").iterdir()) == ["raw"]


def test_a_catalogue_change_reruns_the_pipeline_only_when_it_changes_the_books(dvc_project, server):
    """`dvc repro -f download-gutenberg` reads the catalogue again; what follows reruns only if
    the books it chose changed (the catalogue's own bytes are recorded nowhere)."""
    repo, env = dvc_project
    server.files["/pg_catalog.csv"] = catalogue()
    serve_books(server, [3, 9, 12, 15])
    catalogue_params(repo, server, {"url": server.url + "/pg_catalog.csv", "where": {"Language": "en"}, "count": 2})
    assert repro(repo, env, "window") == ["download-gutenberg", "strip-boilerplate", "encode-vocab", "window"]
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "catalogue"], repo, env)
    lock = (repo / "dvc.lock").read_text()

    renamed = [(n, k, lang, subjects.upper(), shelves) for n, k, lang, subjects, shelves in ROWS]  # same books
    server.files["/pg_catalog.csv"] = catalogue(renamed + [(40, "Text", "en", "Humor", "Category: Humour")])
    assert repro(repo, env, "-f", "-s", "download-gutenberg") == ["download-gutenberg"]
    assert repro(repo, env, "window") == [] and (repo / "dvc.lock").read_text() == lock

    server.files["/pg_catalog.csv"] = catalogue(ROWS + [(2, "Text", "en", "Humor", "Category: Humour")])
    serve_books(server, [2])
    assert repro(repo, env, "-f", "-s", "download-gutenberg") == ["download-gutenberg"]
    assert repro(repo, env, "window") == ["strip-boilerplate", "encode-vocab", "window"]
    assert [e["id"] for e in json.loads((repo / "data/raw/manifest.json").read_text())] == [1, 2, 3]


def test_an_empty_catalog_takes_every_text_and_a_bom_is_no_column(server, in_tmp):
    server.files["/pg_catalog.csv"] = b"\xef\xbb\xbf" + catalogue()
    serve_books(server, [3, 5, 9, 12, 15, 20])
    catalogue_params(in_tmp, server, {"url": server.url + "/pg_catalog.csv"}, book_ids=())
    download_gutenberg.main()
    assert [e["id"] for e in json.loads((in_tmp / "data/raw/manifest.json").read_text())] == [3, 5, 9, 12, 15, 20]
