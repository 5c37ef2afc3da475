"""download-gutenberg: fetch each book's plain-text file, byte for byte as served.

Writes data/raw/pg<id>.txt and data/raw/manifest.json (id, url, bytes, sha256 per book).

Books are downloaded several at once (download.POOL_SIZE), under one progress bar. Each is
written, whole, to data/checkpoints/download-gutenberg/ first; data/raw/ is replaced only when
every book has arrived. When some fail, the error names each of them with every URL tried, and
the ones that arrived stay in that folder: the next run downloads only the rest (delete the
folder to fetch them afresh), and data/raw/ keeps the previous run's books meanwhile.

An empty file or an HTML page (a login or error page) is refused from any source, and the next
source tried.

GUTENBERG_MIRROR (an http(s) URL template with {id}, or a local directory holding pg<id>.txt)
is tried before the params' mirrors; a mirror directory that does not exist is an error at once.
It changes only where the bytes come from: the manifest records each book's canonical URL (the
first mirror in params.yaml), so the data's identity in dvc.lock is the same whichever mirror
served it; the sha256 shows the bytes are too.
"""

import contextlib
import os
import shutil
import sys
from pathlib import Path

from download import Download, fetch_many, mirror_hint, with_mirror
from errors import UserError, run
from files import atomic_dir, sha256_file, write_json
from params import list_of, non_empty_string, positive_int, read_params

OUT_DIR = Path("data/raw")
ARRIVED = Path("data/checkpoints/download-gutenberg")  # books of a run that has not finished yet
PARAMS = {"book_ids": list_of(positive_int), "mirrors": list_of(non_empty_string)}


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
    lines = [f"could not download {len(failed)} of {len(downloads)} books:"] if len(downloads) > 1 else []
    arrived = len(downloads) - len(failed)
    if arrived:
        errors.append(f"The other {arrived} arrived and are kept in {ARRIVED}: the next run downloads only the "
                      f"{len(failed)} that failed. {OUT_DIR} is left as it was.")
    return "\n".join(lines + errors + [hint])


def main() -> None:
    params = read_params("download-gutenberg", PARAMS)
    check_templates(params["mirrors"])
    book_ids = list(dict.fromkeys(params["book_ids"]))  # a book listed twice is downloaded once
    downloads, hints = [], {}
    for book_id in book_ids:  # every source is checked before anything is downloaded
        name = f"pg{book_id}.txt"
        urls = with_mirror([t.format(id=book_id) for t in params["mirrors"]], name, id=book_id)
        downloads.append(Download(f"Gutenberg book {book_id}", urls, ARRIVED / name))
        hints[ARRIVED / name] = mirror_hint(name, id=book_id)
    kept = [d for d in downloads if d.dest.is_file()]
    used, failed = fetch_many([d for d in downloads if d not in kept], "Gutenberg books")
    for d in kept:
        used[d.dest] = f"an earlier run that did not finish (kept in {ARRIVED})"
    if failed:
        remove_if_empty(ARRIVED)
        first = next(d.dest for d in downloads if d.dest in failed)
        raise UserError(failure_message(failed, downloads, hints[first]))

    manifest = [{"id": book_id, "url": params["mirrors"][0].format(id=book_id),
                 "bytes": (ARRIVED / f"pg{book_id}.txt").stat().st_size,
                 "sha256": sha256_file(ARRIVED / f"pg{book_id}.txt")} for book_id in params["book_ids"]]
    with atomic_dir(OUT_DIR) as tmp:
        for d in downloads:
            print(f"{d.dest.name}: {d.dest.stat().st_size:,} bytes from {used[d.dest]}", file=sys.stderr)
            os.replace(d.dest, tmp / d.dest.name)
        write_json(tmp / "manifest.json", manifest)
    shutil.rmtree(ARRIVED)
    remove_if_empty(ARRIVED)


if __name__ == "__main__":
    run(main)
