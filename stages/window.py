"""window: cut the encoded corpus into training and validation sequences.

Reads data/vocab/ids.npy; writes data/windows/train.npz and data/windows/val.npz.

The validation text is the contiguous tail of the corpus: windows cut at random from the same
text would overlap training windows and leak. Training is many-to-many: a window's inputs are
tokens[s : s+seq_length] and its targets the same text shifted by one, tokens[s+1 : s+seq_length+1],
so every position is a prediction (the tutorial predicted one character per window). Each file
holds its text once (`tokens`) plus the window starts (`starts`), not a copy per window.

Neither is held in memory: the ids are read a piece at a time through memory maps, and the
starts, evenly spaced, are a range written a piece at a time.
"""

from pathlib import Path

import numpy as np

from errors import UserError, run
from files import MappedVector, write_npz
from params import fraction, positive_int, read_params

IDS = Path("data/vocab/ids.npy")
OUT = {"train": Path("data/windows/train.npz"), "val": Path("data/windows/val.npz")}
PARAMS = {"seq_length": positive_int, "step": positive_int, "val_fraction": fraction}


def split_tail(ids, val_fraction: float) -> tuple:
    """Training head and held-out tail (of an ndarray, or a MappedVector)."""
    cut = len(ids) - int(round(len(ids) * val_fraction))
    return ids[:cut], ids[cut:]


def window_starts(n_tokens: int, seq_length: int, step: int) -> range:
    """Starts s of every window whose inputs and shifted targets fit in n_tokens."""
    return range(0, n_tokens - seq_length, step)


def make_windows(ids, seq_length: int, step: int, val_fraction: float) -> dict:
    """Each split's tokens (slices of `ids`, an ndarray or a MappedVector) and window starts."""
    train, val = split_tail(ids, val_fraction)
    if seq_length >= len(train):
        raise UserError(f"params.yaml: window.seq_length = {seq_length} is not smaller than the training "
                        f"text ({len(train):,} tokens); lower it or add books")
    if seq_length >= len(val):
        raise UserError(f"params.yaml: window.seq_length = {seq_length} is not smaller than the validation "
                        f"text ({len(val):,} tokens, window.val_fraction = {val_fraction}); "
                        "lower seq_length or raise val_fraction")
    # Validation windows do not overlap, so each held-out token is scored once.
    return {"train": {"tokens": train, "starts": window_starts(len(train), seq_length, step)},
            "val": {"tokens": val, "starts": window_starts(len(val), seq_length, seq_length)}}


def main() -> None:
    params = read_params("window", PARAMS)
    try:
        ids = MappedVector.open(IDS)
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"cannot read {IDS} ({err}); run `dvc checkout {IDS}` or `dvc repro -f encode-vocab`")
    splits = make_windows(ids, params["seq_length"], params["step"], params["val_fraction"])
    for name, split in splits.items():
        write_npz(OUT[name], seq_length=np.int64(params["seq_length"]), **split)


if __name__ == "__main__":
    run(main)
