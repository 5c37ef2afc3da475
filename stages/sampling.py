"""Sampling: running a trained model one token at a time and drawing each next token. Plain
NumPy on the weights train-lstm saves beside the model (data/models/<branch>.npz), so neither the
sample stage nor generate.py imports TensorFlow."""

from __future__ import annotations

import zipfile

import numpy as np

from errors import UserError
from text import clean_headline, clean_text
from vocab import encode_chars, encode_words


def sample_next(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator,
                top_p: float | None = None, banned: list[int] = ()) -> np.ndarray:
    """Draw one token id per row of `logits` (batch, vocab) at `temperature`. Sampling, not
    argmax: greedy decoding loops. `top_k` keeps the k most likely tokens; `top_p` (nucleus
    sampling) the smallest set whose probability reaches p; `banned` ids are never drawn."""
    logits = np.asarray(logits, dtype=np.float64) / temperature
    if len(banned):
        logits[:, banned] = -np.inf
    if top_k and top_k < logits.shape[-1]:
        cutoff = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]
        logits = np.where(logits < cutoff, -np.inf, logits)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-probs, axis=-1, kind="stable")
        ranked = np.take_along_axis(probs, order, axis=-1)
        # a token stays if the tokens ranked above it hold less than top_p between them
        keep = np.cumsum(ranked, axis=-1) - ranked < top_p
        probs = np.zeros_like(probs)
        np.put_along_axis(probs, order, np.where(keep, ranked, 0.0), axis=-1)
        probs /= probs.sum(axis=-1, keepdims=True)
    # Inverse-CDF draw, as Generator.choice(p=...) does it, so the same seed gives the same text
    # as choice would, at a fraction of its per-call cost.
    cdf = np.cumsum(probs, axis=-1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(cdf))
    return (cdf <= u[:, None]).sum(axis=-1)


def load_weights(path, train_stage: str = "train-lstm") -> dict:
    """The sampler's arrays, read as data only (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"cannot read model weights {path} ({err}); run `dvc checkout {path}` or "
                        f"`dvc repro -f {train_stage}`")


class Stepper:
    """Runs a trained model one token at a time, carrying each LSTM layer's (h, c) state, so
    generating a token costs one step, not a pass over the whole window as in the tutorial.

    A step is a few small matrix products, and at batch 1 calling into TensorFlow for each would
    cost more than the arithmetic, so it is NumPy, arranged for few calls: the first layer's
    input projection is looked up (embedding @ kernel + bias, one row per token), each later
    layer does one product of [x, h] with its stacked kernels, and one tanh serves all gates. A test checks it against the Keras model run
    over whole sequences."""

    def __init__(self, weights: dict):
        n_layers = sum(1 for key in weights if key.endswith("_recurrent_kernel"))
        layers = [[weights[f"lstm_{i}_{part}"].astype(np.float32) for part in ("kernel", "recurrent_kernel", "bias")]
                  for i in range(1, n_layers + 1)]
        units = [kernel.shape[1] // 4 for kernel, _, _ in layers]
        # Keras' gate order is input, forget, candidate, output. Put the three sigmoid gates
        # first and halve their columns: sigmoid(x) = (tanh(x / 2) + 1) / 2, so one tanh over
        # the whole row serves all four gates.
        order = [np.r_[0:u, u:2 * u, 3 * u:4 * u, 2 * u:3 * u] for u in units]
        scale = [np.r_[np.full(3 * u, 0.5), np.ones(u)].astype(np.float32) for u in units]
        (k1, r1, b1), o1, s1 = layers[0], order[0], scale[0]
        self.input_table = (weights["embedding"].astype(np.float32) @ k1 + b1)[:, o1] * s1
        self.recurrent = r1[:, o1] * s1
        self.stacked = [(np.vstack([k, r])[:, o] * sc, b[o] * sc)
                        for (k, r, b), o, sc in zip(layers[1:], order[1:], scale[1:])]
        self.units = units
        self.out_kernel = weights["logits_kernel"].astype(np.float32)
        self.out_bias = weights["logits_bias"].astype(np.float32)
        self.vocab_size = self.out_bias.shape[0]

    def initial_state(self, batch: int) -> list:
        return [(np.zeros((batch, u), np.float32),) * 2 for u in self.units]

    def step(self, token_ids: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """Feed one token per row; return the logits for the next token and the new state."""
        new_state = []
        for layer, ((h, c), u) in enumerate(zip(state, self.units)):
            if layer == 0:
                z = self.input_table[np.asarray(token_ids)] + h @ self.recurrent
            else:
                kernel, bias = self.stacked[layer - 1]
                z = np.concatenate([x, h], axis=-1) @ kernel + bias
            t = np.tanh(z)
            gates = t[:, :3 * u] * 0.5 + 0.5  # input, forget, output
            c = gates[:, u:2 * u] * c + gates[:, :u] * t[:, 3 * u:]
            x = h = gates[:, 2 * u:] * np.tanh(c)
            new_state.append((h, c))
        return x @ self.out_kernel + self.out_bias, new_state


def generate(stepper, seeds: list, length: int, temperature: float, top_k, rng, end_id=None, top_p=None,
             banned=(), on_token=None) -> list[list[int]]:
    """Prime the state with the seeds (one per row, all the same length), then draw up to
    `length` tokens per row; a row stops at `end_id`, which is not returned. `on_token` is
    called with each step's tokens as they are drawn (to stream them to a terminal)."""
    state = stepper.initial_state(len(seeds))
    prompt = np.stack(seeds)
    for column in prompt[:, :-1].T:
        _, state = stepper.step(column, state)
    token, out, ended = prompt[:, -1], [], np.zeros(len(seeds), dtype=bool)
    for _ in range(length):
        logits, state = stepper.step(token, state)
        token = sample_next(logits, temperature, top_k, rng, top_p, banned)
        out.append(token)
        if on_token:
            on_token(token)
        if end_id is not None:
            ended |= token == end_id
            if ended.all():
                break
    rows = np.array(out).T.tolist()
    return [row[:row.index(end_id)] if end_id in row else row for row in rows]


def banned_ids(vocab: dict) -> list[int]:
    """Tokens a generated text must never contain: padding, and the unknown token (which stands
    for rare training tokens, not for text anyone wrote)."""
    return [vocab["tokens"].index(vocab[key]) for key in ("pad", "unknown") if vocab.get(key)]


def validation_seeds(tokens: np.ndarray, seed_length: int, count: int, rng) -> list[tuple[int, np.ndarray]]:
    """`count` windows of the validation text (offset, ids), chosen by the RNG: the prompt a
    sample starts from when none is given."""
    length = min(seed_length, len(tokens))
    offsets = rng.integers(0, len(tokens) - length + 1, size=count)
    return [(int(o), tokens[o:o + length]) for o in offsets]


def describe_cleaning(cleaning: dict) -> str:
    done = [what for key, what in (("lowercase", "lowercased"), ("ascii_punctuation", "punctuation folded to ASCII"),
                                   ("ascii_fold", "accents folded to ASCII"),
                                   ("strip_punctuation", "punctuation removed")) if cleaning.get(key)]
    return " and ".join(done)


def encode_prompt(prompt: str, vocab: dict, source: str) -> np.ndarray:
    """A prompt as token ids, cleaned as the model's training text was (the switches are in the
    vocabulary). Characters or words still outside the vocabulary are refused by name, with why."""
    tokens, cleaning = vocab["tokens"], vocab.get("cleaning") or {}
    how = describe_cleaning(cleaning)
    after = f" (after it was {how}, as the training text was)" if how else ""
    if vocab.get("unit") == "word":
        words = clean_headline(prompt, **cleaning)[0].split()
        if not words:
            raise UserError(f"{source}: {prompt!r} has no words left{after}; give words")
        known = set(tokens) - {vocab.get("pad"), vocab.get("unknown"), vocab.get("end")}
        missing = list(dict.fromkeys(w for w in words if w not in known))
        if missing:
            raise UserError(f"{source}: {prompt!r} has words the model never saw in training{after}: "
                            f"{', '.join(missing)} (it knows the {len(known):,} most frequent words of its "
                            "headlines); choose other words")
        return np.array(encode_words(words, vocab))
    text = clean_text(prompt, **cleaning) if cleaning else prompt
    if not text:
        raise UserError(f"{source} is empty; give some text to start from")
    missing = sorted(set(text) - (set(tokens) - {vocab.get("unknown")}))
    if missing:
        raise UserError(f"{source} has characters the model never saw in its training text{after}: "
                        + ", ".join(repr(c) for c in missing[:20]) + "; remove or replace them")
    return encode_chars(text, vocab, source)
