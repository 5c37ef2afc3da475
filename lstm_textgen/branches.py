"""Branches: a branch is one input route into the shared train-lstm and sample scripts. Its data
and vocabulary come from its own upstream stages; its stages, model and metrics are named after it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from lstm_textgen.errors import UserError

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
    return spec | {"model": Path(f"data/models/{branch}.keras"), "weights": Path(f"data/models/{branch}.npz"),
                   "live": Path(f"metrics/train/{branch}"),
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
