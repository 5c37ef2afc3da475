"""Training and validation windows over a token sequence: the held-out tail, where each window
starts, and the order an epoch visits them in. Training is many-to-many: a window's inputs are
tokens[s : s+seq_length] and its targets the same text shifted by one, so every position is a
prediction (the tutorial predicted one character per window).

Nothing here is an array as long as the corpus: a split's windows start every `step` tokens, so
a window is its number, and an epoch's shuffled order is computed for the windows of one batch
at a time. Training's memory then stays the same from one book to a shelf."""

import functools

import numpy as np

from lstm_textgen.errors import UserError

LAYOUT = "windows.json"  # beside the splits' tokens: seq_length, and each split's step and window count
SHUFFLE_ROUNDS = 4       # Feistel rounds: from 4 on, each output bit depends on every input bit


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
              **{name: {"tokens": len(tokens), "step": steps[name],
                        "windows": window_count(len(tokens), seq_length, steps[name])}
                 for name, tokens in splits.items()}}
    return splits, layout


def _mixed(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64s: every input bit flips about half the output bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _feistel(x: np.ndarray, half_bits: int, keys: np.ndarray) -> np.ndarray:
    """A keyed bijection of [0, 4**half_bits): whatever the round function, a Feistel network
    can be undone round by round, so no two inputs meet."""
    mask, half = np.uint64((1 << half_bits) - 1), np.uint64(half_bits)
    left, right = x >> half, x & mask
    for key in keys:
        left, right = right, left ^ (_mixed(right ^ key) & mask)
    return (left << half) | right


@functools.lru_cache(maxsize=8)  # an epoch's keys, asked for at every batch
def _keys(seed: int, epoch: int) -> np.ndarray:
    return np.random.SeedSequence([seed, epoch]).generate_state(SHUFFLE_ROUNDS, np.uint64)


def shuffled_windows(positions, n: int, seed: int, epoch: int) -> np.ndarray:
    """The windows at `positions` of an epoch's order: a permutation of range(n) drawn from
    (seed, epoch) alone, so a resumed run sees each epoch as an uninterrupted one would. It is
    evaluated at the positions asked for only, never stored whole: a Feistel network permutes
    the smallest [0, 4**k) that holds n, and a result outside range(n) is permuted again until
    it falls inside (cycle walking), which keeps it a permutation of range(n)."""
    half_bits = max(1, (int(n - 1).bit_length() + 1) // 2)
    out = _feistel(np.asarray(positions, dtype=np.uint64), half_bits, _keys(seed, epoch))
    while (outside := out >= n).any():  # at most 4**k < 4n values: under 4 passes on average
        out[outside] = _feistel(out[outside], half_bits, _keys(seed, epoch))
    return out.astype(np.int64)
