"""Branches: a branch is one input route into the shared train-lstm and sample scripts. Its data
and vocabulary come from its own upstream stages; its stages, model and metrics are named after it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from lstm_textgen.errors import UserError
from lstm_textgen.files import MappedVector, pieces_of
from lstm_textgen.windows import LAYOUT, window_count

BRANCHES = {
    "char": {"train": "data/windows/train.npy", "val": "data/windows/val.npy", "layout": f"data/windows/{LAYOUT}",
             "vocab": "data/vocab/chars.json",
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
    for key in ("train", "val", "vocab", "layout"):
        if key in spec:
            spec[key] = Path(spec[key])
    return spec | {"model": Path(f"data/models/{branch}.keras"), "weights": Path(f"data/models/{branch}.npz"),
                   "live": Path(f"metrics/train/{branch}"),
                   "sample": Path(f"metrics/sample/{branch}")}


def load_split(path, vocab: dict, upstream: str) -> dict:
    """One split of a branch's training data, in either of its two forms: `tokens` (the text
    once, a MappedVector: read a piece or a batch at a time) with the window layout `seq_length`,
    `step` and `windows` (char), or one padded row per example, in memory (headlines)."""
    path = Path(path)
    redo = f"run `dvc checkout {path.parent if path.suffix == '.npy' else path}` or `dvc repro -f {upstream}`"
    try:
        if path.suffix == ".npy":
            data = {"tokens": MappedVector.open(path), **window_layout(path.parent / LAYOUT, path.stem, redo)}
        else:
            with np.load(path) as f:
                data = {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # truncated or edited
        raise UserError(f"cannot read {path} ({err}); {redo}")
    ids = data.get("rows", data.get("tokens"))
    if ids is None or not len(ids):
        raise UserError(f"{path} holds no token ids; run `dvc repro -f {upstream}`")
    if largest(ids) >= len(vocab["tokens"]):
        raise UserError(f"{path} holds token ids beyond the vocabulary's {len(vocab['tokens'])} tokens: it was "
                        f"made from another vocabulary; run `dvc repro -f {upstream}`")
    if "tokens" in data and not 0 < data["windows"] == window_count(len(ids), data["seq_length"], data["step"]):
        raise UserError(f"{path} has no windows, or its {LAYOUT} describes another text; {redo}")
    return data


def window_layout(path: Path, split: str, redo: str) -> dict:
    """seq_length, and the split's step and window count, from the window stage's windows.json."""
    try:
        layout = json.loads(path.read_text(encoding="utf-8"))
        return {"seq_length": int(layout["seq_length"]), "step": int(layout[split]["step"]),
                "windows": int(layout[split]["windows"])}
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path} ({err}); {redo}")
    except (KeyError, TypeError) as err:
        raise UserError(f"{path} has no {err} where the window layout of {split} should be; {redo}")


def largest(ids) -> int:
    """The largest id, of an ndarray or (a megabyte at a time) a MappedVector."""
    return max(int(piece.max()) for piece in pieces_of(ids, 1 << 20))
