"""What several stages share: params, atomic writes, downloads, the vocabulary, sampling.

No TensorFlow here (see lstm.py for the model): the stages that only move data import this
module and stay fast. Functions are pure where they can be, so tests import them without DVC.
"""

from __future__ import annotations

import contextlib
import difflib
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import unicodedata
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

PARAMS_FILE = "params.yaml"


class UserError(Exception):
    """A problem the user can fix (bad param, bad file, no network): printed without a traceback."""


def run(main) -> None:
    """Run a stage's main(); a UserError becomes one clear message on stderr and exit code 1."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


# --- params -------------------------------------------------------------------------------
# Each stage declares the keys of its own params.yaml section with a check per key; the values
# themselves live only in params.yaml. A check returns None when the value is fine, or says
# what the value must be.

def positive_int(v):
    return None if isinstance(v, int) and not isinstance(v, bool) and v > 0 else "must be a whole number > 0"


def non_negative_int(v):
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else "must be a whole number >= 0"


def positive_number(v):
    return None if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else "must be a number > 0"


def fraction(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1
    return None if ok else "must be a number between 0 and 1 (exclusive)"


def dropout_rate(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1
    return None if ok else "must be a number >= 0 and < 1"


def boolean(v):
    return None if isinstance(v, bool) else "must be true or false"


def integer(v):
    return None if isinstance(v, int) and not isinstance(v, bool) else "must be a whole number"


def one_of(*choices):
    def check_choice(v):
        return None if v in choices else "must be one of: " + ", ".join(choices)
    return check_choice


def optional(check):
    def check_optional(v):
        return None if v is None else check(v)
    return check_optional


def non_empty_string(v):
    return None if isinstance(v, str) and v else "must be a non-empty string"


def list_of(check, non_empty=True):
    def check_list(v):
        if not isinstance(v, list) or (non_empty and not v):
            return "must be a non-empty list"
        problems = [f"item {i} {p}" for i, item in enumerate(v) if (p := check(item))]
        return "; ".join(problems) or None
    return check_list


def read_params(section: str, schema: dict, path: str | os.PathLike = PARAMS_FILE) -> dict:
    """Read and check one section of params.yaml; every problem is reported, one per line."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the stage from the project root (where dvc.yaml is)")
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}")
    values = doc.get(section)
    if not isinstance(values, dict):
        raise UserError(f"{path} has no '{section}:' section; add it (see README.md, 'Stages')")
    problems = []
    for key in values:
        if key not in schema:
            close = difflib.get_close_matches(key, schema, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(schema)})"
            problems.append(f"{path}: {section}.{key} is not a known param{hint}")
    for key, check in schema.items():
        if key not in values:
            problems.append(f"{path}: {section}.{key} is missing")
        elif (problem := check(values[key])) is not None:
            problems.append(f"{path}: {section}.{key} = {values[key]!r} {problem}")
    if problems:
        raise UserError("\n".join(problems))
    return values


# --- files ---------------------------------------------------------------------------------
# Outputs appear complete or not at all: everything is written to a hidden temporary name in
# the same directory and renamed into place only once it is whole.

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sweep_partials(path: Path) -> None:
    """Remove what an earlier, killed run left half-written beside `path`."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.partial*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_partials(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".partial{suffix}")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; outputs get the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary directory beside `path`; on success it takes the place of `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_partials(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path, content: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(content, encoding="utf-8")


def write_json(path, data) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_npz(path, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- downloads -----------------------------------------------------------------------------
# GUTENBERG_MIRROR, for offline machines, is tried before any other source: an http(s) URL
# template with {id} (books only), or a directory, local or http, holding the files by name.

MIRROR_ENV = "GUTENBERG_MIRROR"
MIRROR_HINT = ("Check the network, or set GUTENBERG_MIRROR to a URL template with {id} or to a directory "
               "(local or http) holding the file (see README.md, 'Offline').")


def with_mirror(urls: list[str], filename: str, **fields) -> list[str]:
    """`urls`, with the GUTENBERG_MIRROR source for `filename` first when it is set."""
    override = os.environ.get(MIRROR_ENV)
    if not override:
        return urls
    if "{" in override:
        try:
            return [override.format(**fields), *urls]
        except KeyError:  # a template for books; this file has no {id}
            return urls
    return [f"{override.rstrip('/')}/{filename}", *urls]


RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def fetch(urls: list[str], dest: str | os.PathLike, what: str, *, hint: str = "",
          attempts: int = 4, timeout: float = 30.0, backoff: float = 1.0) -> str:
    """Download the first of `urls` that serves a text file to `dest`; return the URL used.

    A URL may also be a local file path. Timeouts, dropped connections, short bodies and 5xx
    are retried with exponential backoff; 4xx and HTML pages move on to the next URL at once.
    On failure, one UserError names `what` and every URL tried with its reason; `dest` is
    never left half-written.
    """
    import requests  # only the download stages pay for importing it
    from tqdm import tqdm

    failures = []
    for url in urls:
        if not url.startswith(("http://", "https://")):
            if Path(url).is_file():
                with atomic_path(dest) as tmp:
                    shutil.copyfile(url, tmp)
                return url
            failures.append(f"{url}: no such file")
            continue
        for attempt in range(1, attempts + 1):
            retry, reason = False, None
            try:
                with requests.get(url, stream=True, timeout=timeout) as resp:
                    if resp.status_code >= 400:
                        retry = resp.status_code in RETRYABLE_STATUS
                        reason = f"HTTP {resp.status_code} {resp.reason}"
                    elif "html" in resp.headers.get("Content-Type", "").lower():
                        reason = "served an HTML page, not a plain-text file (a login or error page?)"
                    else:
                        total = int(resp.headers.get("Content-Length", 0)) or None
                        with atomic_path(dest) as tmp, open(tmp, "wb") as f, tqdm(
                            total=total, unit="B", unit_scale=True, desc=Path(dest).name,
                            file=sys.stderr, disable=None, leave=False,
                        ) as bar:
                            for chunk in resp.iter_content(chunk_size=1 << 16):
                                f.write(chunk)
                                bar.update(len(chunk))
                        return url
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as err:
                retry, reason = True, f"{type(err).__name__}: {err}"
            if not retry or attempt == attempts:
                failures.append(f"{url}: {reason}" + (f" (after {attempt} attempts)" if retry else ""))
                break
            wait = backoff * 2 ** (attempt - 1)
            print(f"{what}: {url}: {reason}; retrying in {wait:g}s", file=sys.stderr)
            time.sleep(wait)
    raise UserError(f"could not download {what}; tried:\n  " + "\n  ".join(failures)
                    + (f"\n{hint}" if hint else ""))


# --- vocabulary ----------------------------------------------------------------------------
# A vocabulary is a sorted list of tokens (characters here); a token's id is its index. When
# rare tokens were folded away, `unknown` names the token that stands for them.

UNKNOWN_CHAR = "\ufffd"


def build_char_vocab(text: str, min_count: int = 1) -> dict:
    counts = Counter(text)
    kept = [c for c, n in counts.items() if n >= min_count]
    rare = len(counts) - len(kept)
    tokens = sorted(kept + ([UNKNOWN_CHAR] if rare and UNKNOWN_CHAR not in kept else []))
    return {"unit": "char", "tokens": tokens, "unknown": UNKNOWN_CHAR if rare else None}


def id_dtype(vocab_size: int):
    """The smallest unsigned integer type that holds every id."""
    return np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.uint32


def encode_chars(text: str, vocab: dict, source: str = "text") -> np.ndarray:
    """Map each character to its id; characters outside the vocabulary map to its unknown
    token, or are refused by name when it has none."""
    index = {c: i for i, c in enumerate(vocab["tokens"])}
    unknown = index.get(vocab["unknown"]) if vocab.get("unknown") else None
    missing = sorted({c for c in set(text) if c not in index})
    if missing and unknown is None:
        raise UserError(f"{source} has characters outside the vocabulary: "
                        + ", ".join(repr(c) for c in missing[:20])
                        + "; remove them, or choose text made of the training corpus' characters")
    ids = [index.get(c, unknown) for c in text]
    return np.asarray(ids, dtype=id_dtype(len(vocab["tokens"])))


def decode_chars(ids, vocab: dict) -> str:
    tokens = vocab["tokens"]
    return "".join(tokens[i] for i in ids)


JOINING_PUNCTUATION = set("'\u2018\u2019.")


def clean_headline(raw: str, repair_encoding: bool, ascii_fold: bool, lowercase: bool,
                   strip_punctuation: bool) -> tuple[str, bool]:
    """A headline after each cleaning step that is switched on (tokenize-headlines stores the
    switches in the vocabulary, so sample cleans seed phrases the same way), and whether its
    encoding was repaired ("â€™" read back as "’")."""
    import ftfy  # the well-kept mojibake repairer; only the headlines stages load it
    text, repaired = raw, False
    if repair_encoding:
        text = ftfy.fix_encoding(raw)
        repaired = text != raw
    if strip_punctuation:  # every Unicode punctuation mark and symbol, curly quotes included;
        # apostrophes and periods join their word ("trump’s" → "trumps", "u.s." → "us")
        text = "".join("" if c in JOINING_PUNCTUATION else " " if unicodedata.category(c)[0] in "PS" else c
                       for c in text)
    if ascii_fold:  # é → e; what has no ASCII form is dropped
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    if lowercase:
        text = text.lower()
    return " ".join(text.split()), repaired


def encode_words(words: list[str], vocab: dict) -> list[int]:
    """Word ids; words outside the vocabulary map to its unknown token."""
    index = {w: i for i, w in enumerate(vocab["tokens"])}
    unknown = index[vocab["unknown"]]
    return [index.get(w, unknown) for w in words]


def read_vocab(path) -> dict:
    try:
        vocab = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read vocabulary {path}: {err}; run `dvc repro encode-vocab`")
    return vocab


# --- branches ------------------------------------------------------------------------------
# A branch is one input route into the shared train-lstm and sample scripts. Its data and
# vocabulary come from its own upstream stages; its stages, model and metrics are named after it.

BRANCHES = {
    "char": {"train": "data/windows/train.npz", "val": "data/windows/val.npz", "vocab": "data/vocab/chars.json",
             "upstream": "window", "train_stage": "train-lstm", "sample_stage": "sample"},
    "headlines": {"train": "data/headlines/train.npz", "val": "data/headlines/val.npz",
                  "vocab": "data/headlines/vocab.json", "upstream": "tokenize-headlines",
                  "train_stage": "train-lstm-headlines", "sample_stage": "sample-headlines"},
}


def branch_spec(branch: str) -> dict:
    """A branch's inputs, the stage that makes them, its own stage names, and its outputs."""
    if branch not in BRANCHES:
        raise UserError(f"unknown branch {branch!r}; known: {', '.join(BRANCHES)}")
    spec = dict(BRANCHES[branch], branch=branch)
    for key in ("train", "val", "vocab"):
        spec[key] = Path(spec[key])
    return spec | {"model": Path(f"data/models/{branch}.keras"), "live": Path(f"metrics/train/{branch}"),
                   "sample": Path(f"metrics/sample/{branch}")}


def load_split(path, vocab: dict, upstream: str) -> dict:
    """One split of a branch's training data, in either of its two forms: `tokens` (the text
    once) with window `starts` and `seq_length` (char), or one padded row per example (headlines)."""
    try:
        with np.load(path) as f:
            data = {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # truncated or edited
        raise UserError(f"cannot read {path} ({err}); run `dvc checkout {path}` or `dvc repro -f {upstream}`")
    ids = data.get("rows", data.get("tokens"))
    if ids is None or not ids.size:
        raise UserError(f"{path} holds no token ids; run `dvc repro -f {upstream}`")
    if int(ids.max()) >= len(vocab["tokens"]):
        raise UserError(f"{path} holds token ids beyond the vocabulary's {len(vocab['tokens'])} tokens: it was "
                        f"made from another vocabulary; run `dvc repro -f {upstream}`")
    if "starts" in data:
        data["seq_length"] = int(data["seq_length"])
        if not len(data["starts"]) or data["starts"].max() + data["seq_length"] >= ids.size:
            raise UserError(f"{path} has no windows, or windows past its text; run `dvc repro -f {upstream}`")
    return data


# --- sampling ------------------------------------------------------------------------------

def sample_next(logits: np.ndarray, temperature: float, top_k: int | None,
                rng: np.random.Generator) -> np.ndarray:
    """Draw one token id per row of `logits` (batch, vocab) at `temperature`, keeping only the
    `top_k` most likely tokens when top_k is set. Sampling, not argmax: greedy decoding loops."""
    logits = np.asarray(logits, dtype=np.float64) / temperature
    if top_k and top_k < logits.shape[-1]:
        cutoff = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]
        logits = np.where(logits < cutoff, -np.inf, logits)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.array([rng.choice(len(p), p=p) for p in probs])
