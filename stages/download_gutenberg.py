"""download-gutenberg: fetch each book's plain-text file, and each text of your own, byte for byte.

    python stages/download_gutenberg.py      # run by `dvc repro download-gutenberg`

Params: the `download-gutenberg` section of params.yaml (book_ids, catalog, texts, mirrors).
Writes:  data/raw/pg<id>.txt per book, data/raw/text-<hash>-<name> per text, and
         data/raw/manifest.json (each one's source, bytes and sha256, in the params' order: the
         books of book_ids, then those the catalogue chose, then the texts).

`catalog` chooses books from Project Gutenberg's catalogue, pg_catalog.csv (lstm_textgen/catalog.py
says how), fetched from its url, or GUTENBERG_MIRROR's directory first, at each run. The manifest
records the books it chose, so dvc.lock pins them; the catalogue itself is not kept. To see
whether a newer catalogue chooses other books: `dvc repro -f download-gutenberg`, then `dvc repro`
(the stages after it rerun only if data/raw changed).

Books and texts download several at once into data/checkpoints/download-gutenberg/; data/raw/
is replaced only once every one has arrived, so after a failure the next run fetches only what
failed. GUTENBERG_MIRROR (a URL template with {id}, or a directory) is tried first for books; the
manifest still records each book's canonical URL, so a mirror does not change dvc.lock.
"""

import os
import shutil
import sys
from pathlib import Path

from lstm_textgen.catalog import CATALOG_FILE, CATALOG_URL, check_catalog, chosen_books, read_catalog
from lstm_textgen.download import Download, fetch, fetch_many, mirror_hint, with_mirror
from lstm_textgen.errors import UserError, run_stage
from lstm_textgen.files import atomic_dir, sha256_file, write_json
from lstm_textgen.params import list_of, non_empty_string, positive_int, read_params
from lstm_textgen.sources import (check_templates, failure_message, pin_problem, remove_if_empty, text_download,
                                  text_source, texts_of)

OUT_DIR = Path("data/raw")
ARRIVED = Path("data/checkpoints/download-gutenberg")  # books of a run that has not finished yet


PARAMS = {"book_ids": list_of(positive_int, non_empty=False), "catalog": check_catalog,
          "texts": list_of(text_source, non_empty=False), "mirrors": list_of(non_empty_string)}


def main() -> None:
    params = read_params("download-gutenberg", PARAMS)
    check_templates(params["mirrors"])
    texts = texts_of(params["texts"])
    if not params["book_ids"] and params["catalog"] is None and not texts:
        raise UserError("params.yaml: download-gutenberg.book_ids and texts are both empty and catalog is null: "
                        "list a Project Gutenberg eBook number, choose books from the catalogue, or give a text "
                        "of your own")
    chosen = [] if params["catalog"] is None else from_catalog(params["catalog"], params["book_ids"])
    book_ids = list(dict.fromkeys(params["book_ids"] + chosen))  # a book listed twice is downloaded once
    downloads, hints = [], {}
    for book_id in book_ids:  # every source is checked before anything is downloaded
        name = f"pg{book_id}.txt"
        urls = with_mirror([t.format(id=book_id) for t in params["mirrors"]], name, id=book_id)
        downloads.append(Download(f"Gutenberg book {book_id}", urls, ARRIVED / name))
        hints[ARRIVED / name] = mirror_hint(name, id=book_id)
    for text in texts:
        download, hints[ARRIVED / text.name] = text_download(text, ARRIVED)
        downloads.append(download)
    kept = [d for d in downloads[:len(book_ids)] if d.dest.is_file()]  # books only: texts are fetched afresh
    used, failed = fetch_many([d for d in downloads if d not in kept], "texts" if texts else "Gutenberg books")
    for d in kept:
        used[d.dest] = f"an earlier run that did not finish (kept in {ARRIVED})"
    for text in texts:  # a text that is not what its sha256 says is not kept for the next run either
        dest = ARRIVED / text.name
        if dest not in failed and (problem := pin_problem(text, dest)):
            dest.unlink()
            failed[dest], hints[dest] = problem, ""  # it says what to do: no network hint
    if failed:
        remove_if_empty(ARRIVED)
        first = next(d.dest for d in downloads if d.dest in failed)
        raise UserError(failure_message(failed, downloads, hints[first], ARRIVED, OUT_DIR))

    def book(book_id: int, **chosen_by) -> dict:
        path = ARRIVED / f"pg{book_id}.txt"
        return {"id": book_id, "url": params["mirrors"][0].format(id=book_id), **chosen_by,
                "bytes": path.stat().st_size, "sha256": sha256_file(path)}

    manifest = [book(n) for n in params["book_ids"]] + [book(n, chosen_by="catalog") for n in chosen]
    manifest += [{"text": text.source, "file": text.name, "bytes": (ARRIVED / text.name).stat().st_size,
                  "sha256": sha256_file(ARRIVED / text.name)} for text in texts]
    with atomic_dir(OUT_DIR) as tmp:
        for d in downloads:
            print(f"{d.dest.name}: {d.dest.stat().st_size:,} bytes from {used[d.dest]}", file=sys.stderr)
            os.replace(d.dest, tmp / d.dest.name)
        write_json(tmp / "manifest.json", manifest)
    shutil.rmtree(ARRIVED)
    remove_if_empty(ARRIVED)


def from_catalog(catalog: dict, listed: list[int]) -> list[int]:
    """The eBook numbers `catalog` chooses from pg_catalog.csv, fetched from its url (or the
    GUTENBERG_MIRROR directory first) into data/checkpoints/, and removed once read; those
    `listed` in book_ids already are left out (`count` counts the catalogue's choice, them included)."""
    url = catalog.get("url", CATALOG_URL)
    path = ARRIVED / CATALOG_FILE
    source = fetch(with_mirror([url], CATALOG_FILE), path, "the catalogue", hint=mirror_hint(CATALOG_FILE))
    try:
        where = catalog.get("where", {})
        ids, matched = chosen_books(read_catalog(path, source, list(where)), where, catalog.get("count"),
                                    catalog.get("sample_seed"), source)
    finally:
        path.unlink()
        remove_if_empty(ARRIVED)
    how = ("all" if len(ids) == matched else "a sample of" if catalog.get("sample_seed") is not None else "the first")
    new = [n for n in ids if n not in listed]
    also = f" ({len(ids) - len(new)} of them in book_ids already)" if len(new) < len(ids) else ""
    print(f"the catalogue ({source}): {matched:,} books of Type Text match; taking {how} {len(ids):,}{also}",
          file=sys.stderr)
    return new


if __name__ == "__main__":
    run_stage(main)
