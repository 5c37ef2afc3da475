"""download-gutenberg: fetch each book's plain-text file, byte for byte as served.

Writes data/raw/pg<id>.txt and data/raw/manifest.json (id, url, bytes, sha256 per book).

GUTENBERG_MIRROR (an http(s) URL template with {id}, or a local directory holding pg<id>.txt)
is tried before the params' mirrors. It changes only where the bytes come from: the manifest
records each book's canonical URL (the first mirror in params.yaml), so the data's identity in
dvc.lock is the same whichever mirror served it; the sha256 shows the bytes are too.
"""

import os
import sys
from pathlib import Path

from common import UserError, atomic_dir, fetch, list_of, positive_int, read_params, run, text, write_json, sha256_file

OUT_DIR = Path("data/raw")
PARAMS = {"book_ids": list_of(positive_int), "mirrors": list_of(text)}


def mirror_urls(book_id: int, templates: list[str], override: str | None) -> list[str]:
    """Every place to try for one book, in order: the override first, then the templates."""
    urls = [t.format(id=book_id) for t in templates]
    if override:  # a template, or a directory (local or http) holding pg<id>.txt
        first = override.format(id=book_id) if "{id}" in override else f"{override.rstrip('/')}/pg{book_id}.txt"
        urls.insert(0, first)
    return urls


def check_templates(templates: list[str]) -> None:
    bad = [t for t in templates if "{id}" not in t]
    if bad:
        raise UserError("params.yaml: download-gutenberg.mirrors entries need an {id} placeholder: "
                        + ", ".join(bad))


def main() -> None:
    params = read_params("download-gutenberg", PARAMS)
    check_templates(params["mirrors"])
    override = os.environ.get("GUTENBERG_MIRROR") or None
    manifest = []
    with atomic_dir(OUT_DIR) as tmp:
        for book_id in params["book_ids"]:
            dest = tmp / f"pg{book_id}.txt"
            used = fetch(mirror_urls(book_id, params["mirrors"], override), dest, f"Gutenberg book {book_id}",
                         hint="Check the network, or set GUTENBERG_MIRROR to a mirror URL template "
                              "or a local directory holding pg<id>.txt (see README.md).")
            print(f"pg{book_id}.txt: {dest.stat().st_size:,} bytes from {used}", file=sys.stderr)
            manifest.append({"id": book_id, "url": params["mirrors"][0].format(id=book_id),
                             "bytes": dest.stat().st_size, "sha256": sha256_file(dest)})
        write_json(tmp / "manifest.json", manifest)


if __name__ == "__main__":
    run(main)
