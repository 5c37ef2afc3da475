"""Training and validation windows over a token sequence: the held-out tail, and where each
window starts. Training is many-to-many: a window's inputs are tokens[s : s+seq_length] and its
targets the same text shifted by one, so every position is a prediction (the tutorial predicted
one character per window).

Nothing here is an array as long as the corpus: a split's windows start every `step` tokens, so
a window is its number (shuffle.py orders them for each epoch), and training's memory stays the
same from one book to a shelf."""

from lstm_textgen.errors import UserError

LAYOUT = "windows.json"  # beside the splits' tokens: seq_length, and each split's step and window count


def split_tail(ids, val_fraction: float) -> tuple:
    """Training head and held-out tail (of an ndarray, or a MappedVector)."""
    cut = len(ids) - int(round(len(ids) * val_fraction))
    return ids[:cut], ids[cut:]


def window_count(n_tokens: int, seq_length: int, step: int) -> int:
    """How many windows start every `step` tokens with inputs and shifted targets inside n_tokens."""
    return len(range(0, n_tokens - seq_length, step))


def make_windows(ids, seq_length: int, step: int, val_fraction: float) -> tuple[dict, dict]:
    """Each split's tokens (slices of `ids`, an ndarray or a MappedVector), and the layout that
    says where their windows are (written as LAYOUT)."""
    train, val = split_tail(ids, val_fraction)
    if seq_length >= len(train):
        raise UserError(f"params.yaml: window.seq_length = {seq_length} is not smaller than the training "
                        f"text ({len(train):,} tokens); lower it or add books")
    if seq_length >= len(val):
        raise UserError(f"params.yaml: window.seq_length = {seq_length} is not smaller than the validation "
                        f"text ({len(val):,} tokens, window.val_fraction = {val_fraction}); "
                        "lower seq_length or raise val_fraction")
    # Validation windows do not overlap, so each held-out token is scored once.
    steps = {"train": step, "val": seq_length}
    splits = {"train": train, "val": val}
    layout = {"seq_length": seq_length,
              **{name: {"step": steps[name], "windows": window_count(len(tokens), seq_length, steps[name])}
                 for name, tokens in splits.items()}}
    return splits, layout
