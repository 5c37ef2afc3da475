"""Each epoch's order of the training windows: a permutation of the window numbers drawn from
(seed, epoch) alone, computed for the positions of one batch at a time and never stored, so that
it costs no memory on a shelf and a resumed run sees each epoch as an uninterrupted one would."""

import functools

import numpy as np

SHUFFLE_ROUNDS = 4  # Feistel rounds: from 4 on, each output bit depends on every input bit


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
    while (outside := out >= n).any():  # 4**k is at most 4n: under 4 passes on average
        out[outside] = _feistel(out[outside], half_bits, _keys(seed, epoch))
    return out.astype(np.int64)
