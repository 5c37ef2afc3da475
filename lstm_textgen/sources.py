"""What download-gutenberg fetches: the books and the texts of your own that params.yaml lists
(a text's pin, its file name in data/raw), and the one message for those that failed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import NamedTuple

from lstm_textgen.download import Download, is_url
from lstm_textgen.errors import UserError
from lstm_textgen.files import sha256_file


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


def failure_message(failed: dict, downloads: list[Download], hint: str, arrived_dir: Path, out_dir: Path) -> str:
    """One message for the books that failed (fetch's errors, in book order), what became of the
    others, and what to check."""
    errors = [failed[d.dest] for d in downloads if d.dest in failed]
    noun = "books" if all(d.dest.name.startswith("pg") for d in downloads) else "files"
    lines = [f"could not download {len(failed)} of {len(downloads)} {noun}:"] if len(downloads) > 1 else []
    arrived = len(downloads) - len(failed)
    if arrived:
        kept = f"The other {noun[:-1]} arrived and is kept" if arrived == 1 else f"The other {arrived} arrived and are kept"
        errors.append(f"{kept} in {arrived_dir}: the next run downloads only the {len(failed)} that failed. "
                      f"{out_dir} is left as it was.")
    return "\n".join(lines + errors + ([hint] if hint else []))


def text_download(text: Text, folder: Path) -> tuple[Download, str]:
    """How to fetch a text, and the hint its failure ends with."""
    if is_url(text.source):
        hint = "Check the network and the URL in download-gutenberg.texts (or give a local path)"
    elif Path(text.source).is_file():
        hint = f"Check what {text.source} holds: download-gutenberg.texts takes plain UTF-8 text files"
    else:
        hint = ("params.yaml: download-gutenberg.texts: a path is read from the project root (where dvc.yaml "
                "is); give an existing file or an http(s) URL")
    return Download(f"text {text.source}", [text.source], folder / text.name), hint


def pin_problem(text: Text, path: Path) -> str | None:
    """The error for a text whose bytes are not the pinned ones, or None."""
    digest = sha256_file(path)
    if text.sha256 is None or digest == text.sha256:
        return None
    return (f"{text.source} has sha256 {digest}, not the {text.sha256} that download-gutenberg.texts pins: the "
            "file changed. Check it, then set its sha256 to the new value (or null)")
