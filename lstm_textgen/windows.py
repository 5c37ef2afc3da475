"""Training and validation windows over a token sequence: the held-out tail, and where each
window starts. Training is many-to-many: a window's inputs are tokens[s : s+seq_length] and its
targets the same text shifted by one, so every position is a prediction (the tutorial predicted
one character per window)."""

from lstm_textgen.errors import UserError


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
