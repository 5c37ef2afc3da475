"""download-gutenberg: fetch each book's plain-text file, byte for byte as served.

Writes data/raw/pg<id>.txt and data/raw/manifest.json (id, url, bytes, sha256 per book).

An empty file or an HTML page (a login or error page) is refused from any source, and the next
source tried.

GUTENBERG_MIRROR (an http(s) URL template with {id}, or a local directory holding pg<id>.txt)
is tried before the params' mirrors; a mirror directory that does not exist is an error at once.
It changes only where the bytes come from: the manifest records each book's canonical URL (the
first mirror in params.yaml), so the data's identity in dvc.lock is the same whichever mirror
served it; the sha256 shows the bytes are too.
"""

import sys
from pathlib import Path

from download import fetch, mirror_hint, with_mirror
from errors import UserError, run
from files import atomic_dir, sha256_file, write_json
from params import list_of, non_empty_string, positive_int, read_params

OUT_DIR = Path("data/raw")
PARAMS = {"book_ids": list_of(positive_int), "mirrors": list_of(non_empty_string)}


def check_templates(templates: list[str]) -> None:
    bad = [t for t in templates if "{id}" not in t]
    if bad:
        raise UserError("params.yaml: download-gutenberg.mirrors entries need an {id} placeholder: "
                        + ", ".join(bad))


def main() -> None:
    params = read_params("download-gutenberg", PARAMS)
    check_templates(params["mirrors"])
    manifest = []
    with atomic_dir(OUT_DIR) as tmp:
        for book_id in params["book_ids"]:
            dest = tmp / f"pg{book_id}.txt"
            urls = with_mirror([t.format(id=book_id) for t in params["mirrors"]], dest.name, id=book_id)
            used = fetch(urls, dest, f"Gutenberg book {book_id}", hint=mirror_hint(dest.name, id=book_id))
            print(f"pg{book_id}.txt: {dest.stat().st_size:,} bytes from {used}", file=sys.stderr)
            manifest.append({"id": book_id, "url": params["mirrors"][0].format(id=book_id),
                             "bytes": dest.stat().st_size, "sha256": sha256_file(dest)})
        write_json(tmp / "manifest.json", manifest)


if __name__ == "__main__":
    run(main)
