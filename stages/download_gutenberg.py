"""download-gutenberg: fetch each book's plain-text file, and each plain text of your own, byte
for byte as served.

Writes data/raw/pg<id>.txt per book, data/raw/text-<hash>-<name> per text (`texts`: a local path
or an http(s) URL, optionally pinned by its sha256) and data/raw/manifest.json (in the params'
order, books first: a book's id and url, a text's source and file; and each one's bytes and
sha256). A text listed twice is read once; twice with different pins is an error.

Books and texts are downloaded several at once (download.POOL_SIZE), under one progress bar.
Each is written, whole, to data/checkpoints/download-gutenberg/ first; data/raw/ is replaced
only when every one has arrived. When some fail, the error names each of them with every URL
tried, and the books that arrived stay in that folder: the next run downloads only the rest
(delete the folder to fetch them afresh), and data/raw/ keeps the previous run's files
meanwhile. Texts are always fetched afresh (a local one may have been edited since).

An empty file or an HTML page (a login or error page) is refused from any source, and the next
source tried. A text whose bytes differ from its pinned sha256 is refused too, naming both.

GUTENBERG_MIRROR (an http(s) URL template with {id}, or a local directory holding pg<id>.txt)
is tried before the params' mirrors, for books (a text is read from where `texts` says, only);
a mirror directory that does not exist is an error at once.
It changes only where the bytes come from: the manifest records each book's canonical URL (the
first mirror in params.yaml), so the data's identity in dvc.lock is the same whichever mirror
served it; the sha256 shows the bytes are too.
"""

import contextlib
import hashlib
import os
import re
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

from download import Download, fetch_many, is_url, mirror_hint, with_mirror
from errors import UserError, run
from files import atomic_dir, sha256_file, write_json
from params import list_of, non_empty_string, positive_int, read_params

OUT_DIR = Path("data/raw")
ARRIVED = Path("data/checkpoints/download-gutenberg")  # books of a run that has not finished yet
SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def text_source(v):
    """A `texts` item: a path or an http(s) URL, or {source: ..., sha256: ...} to pin its bytes."""
    if isinstance(v, str) and v:
        return None
    if isinstance(v, dict) and set(v) <= {"source", "sha256"} and isinstance(v.get("source"), str) and v["source"]:
        sha = v.get("sha256")
        return None if sha is None or (isinstance(sha, str) and SHA256.fullmatch(sha)) else \
            "has a sha256 that is not 64 hex digits"
    return "must be a path or an http(s) URL, or {source: <path or URL>, sha256: <64 hex digits or null>}"


PARAMS = {"book_ids": list_of(positive_int, non_empty=False), "texts": list_of(text_source, non_empty=False),
          "mirrors": list_of(non_empty_string)}


class Text(NamedTuple):
    source: str          # as params.yaml gives it: a path from the project root, or an http(s) URL
    sha256: str | None   # the bytes it must have, or None

    @property
    def name(self) -> str:
        """Its file name in data/raw: readable, and distinct for distinct sources."""
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", self.source.rstrip("/").rsplit("/", 1)[-1])[-60:] or "text"
        return f"text-{hashlib.sha256(self.source.encode()).hexdigest()[:8]}-{base}"


def texts_of(items: list) -> list[Text]:
    """The texts the params list, each once (a local path in its normal form), with its pin."""
    texts = {}
    for item in items:
        source, sha = (item, None) if isinstance(item, str) else (item["source"], (item.get("sha256") or "").lower())
        source = source if is_url(source) else os.path.normpath(source)
        pinned = texts.get(source, Text(source, None)).sha256
        if pinned and sha and pinned != sha:
            raise UserError(f"params.yaml: download-gutenberg.texts lists {source} twice with different sha256 "
                            f"({pinned}, {sha}): keep the one its bytes have")
        texts[source] = Text(source, pinned or sha or None)
    return list(texts.values())


def check_templates(templates: list[str]) -> None:
    bad = [t for t in templates if "{id}" not in t]
    if bad:
        raise UserError("params.yaml: download-gutenberg.mirrors entries need an {id} placeholder: "
                        + ", ".join(bad))


def remove_if_empty(folder: Path) -> None:
    """Remove `folder`, and data/checkpoints above it, if nothing is left in them."""
    for path in (folder, folder.parent):
        with contextlib.suppress(OSError):
            path.rmdir()


def failure_message(failed: dict, downloads: list[Download], hint: str) -> str:
    """One message for the books that failed (fetch's errors, in book order), what became of the
    others, and what to check."""
    errors = [failed[d.dest] for d in downloads if d.dest in failed]
    noun = "books" if all(d.dest.name.startswith("pg") for d in downloads) else "files"
    lines = [f"could not download {len(failed)} of {len(downloads)} {noun}:"] if len(downloads) > 1 else []
    arrived = len(downloads) - len(failed)
    if arrived:
        errors.append(f"The other {arrived} arrived and are kept in {ARRIVED}: the next run downloads only the "
                      f"{len(failed)} that failed. {OUT_DIR} is left as it was.")
    return "\n".join(lines + errors + [hint])


def text_download(text: Text) -> tuple[Download, str]:
    """How to fetch a text, and the hint its failure ends with."""
    hint = ("Check the network and the URL in download-gutenberg.texts (or give a local path)" if is_url(text.source)
            else "params.yaml: download-gutenberg.texts: a path is read from the project root (where dvc.yaml "
                 "is); give an existing file or an http(s) URL")
    return Download(f"text {text.source}", [text.source], ARRIVED / text.name), hint


def pin_problem(text: Text, path: Path) -> str | None:
    """The error for a text whose bytes are not the pinned ones, or None."""
    digest = sha256_file(path)
    if text.sha256 is None or digest == text.sha256:
        return None
    return (f"{text.source} has sha256 {digest}, not the {text.sha256} that download-gutenberg.texts pins: the "
            "file changed. Check it, then set its sha256 to the new value (or null)")


def main() -> None:
    params = read_params("download-gutenberg", PARAMS)
    check_templates(params["mirrors"])
    book_ids = list(dict.fromkeys(params["book_ids"]))  # a book listed twice is downloaded once
    texts = texts_of(params["texts"])
    if not book_ids and not texts:
        raise UserError("params.yaml: download-gutenberg.book_ids and texts are both empty: list a Project "
                        "Gutenberg eBook number or a text of your own")
    downloads, hints = [], {}
    for book_id in book_ids:  # every source is checked before anything is downloaded
        name = f"pg{book_id}.txt"
        urls = with_mirror([t.format(id=book_id) for t in params["mirrors"]], name, id=book_id)
        downloads.append(Download(f"Gutenberg book {book_id}", urls, ARRIVED / name))
        hints[ARRIVED / name] = mirror_hint(name, id=book_id)
    for text in texts:
        download, hints[ARRIVED / text.name] = text_download(text)
        downloads.append(download)
    kept = [d for d in downloads[:len(book_ids)] if d.dest.is_file()]  # books only: texts are fetched afresh
    used, failed = fetch_many([d for d in downloads if d not in kept], "texts" if texts else "Gutenberg books")
    for d in kept:
        used[d.dest] = f"an earlier run that did not finish (kept in {ARRIVED})"
    for text in texts:  # a text that is not what its sha256 says is not kept for the next run either
        dest = ARRIVED / text.name
        if dest not in failed and (problem := pin_problem(text, dest)):
            dest.unlink()
            failed[dest] = problem
    if failed:
        remove_if_empty(ARRIVED)
        first = next(d.dest for d in downloads if d.dest in failed)
        raise UserError(failure_message(failed, downloads, hints[first]))

    manifest = [{"id": book_id, "url": params["mirrors"][0].format(id=book_id),
                 "bytes": (ARRIVED / f"pg{book_id}.txt").stat().st_size,
                 "sha256": sha256_file(ARRIVED / f"pg{book_id}.txt")} for book_id in params["book_ids"]]
    manifest += [{"text": text.source, "file": text.name, "bytes": (ARRIVED / text.name).stat().st_size,
                  "sha256": sha256_file(ARRIVED / text.name)} for text in texts]
    with atomic_dir(OUT_DIR) as tmp:
        for d in downloads:
            print(f"{d.dest.name}: {d.dest.stat().st_size:,} bytes from {used[d.dest]}", file=sys.stderr)
            os.replace(d.dest, tmp / d.dest.name)
        write_json(tmp / "manifest.json", manifest)
    shutil.rmtree(ARRIVED)
    remove_if_empty(ARRIVED)


if __name__ == "__main__":
    run(main)
