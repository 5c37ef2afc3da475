"""sample: generate text from a branch's trained model, carrying the LSTM state token by token.

    python stages/sample.py <branch>

Writes, beside params.yaml in git: metrics/sample/<branch>/samples.txt, provenance.json (the
params, model and vocabulary hashes that produced it: deterministic fields only) and
metrics.json (speed, and how word-like and varied the text is).
"""

import re
import sys
import time

import numpy as np

from common import (UserError, branch_paths, decode_chars, encode_chars, load_windows, optional, positive_int,
                    positive_number, integer, read_params, read_vocab, run, sample_next, sha256_file, write_json, write_text)

PARAMS = {"length": positive_int, "temperature": positive_number, "top_k": optional(positive_int),
          "seed_text": optional(lambda v: None if isinstance(v, str) and v else "must be a non-empty string or null"),
          "seed_length": positive_int, "num_samples": positive_int, "seed": integer}


def choose_seeds(params: dict, val_tokens: np.ndarray, vocab: dict, rng: np.random.Generator) -> list[dict]:
    """The given seed text for every sample, or a window of the validation text per sample."""
    if params["seed_text"] is not None:
        ids = encode_chars(params["seed_text"], vocab, "params.yaml: sample.seed_text")
        return [{"source": "params.yaml", "ids": ids}] * params["num_samples"]
    length = min(params["seed_length"], len(val_tokens))
    offsets = rng.integers(0, len(val_tokens) - length + 1, size=params["num_samples"])
    return [{"source": "validation text", "offset": int(o), "ids": val_tokens[o:o + length]} for o in offsets]


def generate(stepper, seeds: list[np.ndarray], length: int, temperature: float, top_k, rng) -> np.ndarray:
    """Prime the state with each seed (all the same length), then draw `length` tokens per row."""
    state = stepper.initial_state(len(seeds))
    prompt = np.stack(seeds)
    for column in prompt[:, :-1].T:
        _, state = stepper.step(column, state)
    token, out = prompt[:, -1], np.empty((len(seeds), length), dtype=np.int64)
    for i in range(length):
        logits, state = stepper.step(token, state)
        token = out[:, i] = sample_next(logits, temperature, top_k, rng)
    return out


def words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)*", text.lower())


def distinct_n(tokens: list, n: int) -> float:
    """Share of n-grams that are distinct (1.0: nothing repeats)."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: list, n: int = 4) -> float:
    """Share of word n-grams that already occurred earlier in the same text: loops score high."""
    seen, repeats, grams = set(), 0, [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams) if grams else 0.0


def text_metrics(samples: list[str], training_words: set) -> dict:
    per_sample = [words(s) for s in samples]
    all_words = [w for ws in per_sample for w in ws]
    return {"known_word_share": sum(w in training_words for w in all_words) / len(all_words) if all_words else 0.0,
            "distinct_2": float(np.mean([distinct_n(ws, 2) for ws in per_sample])),
            "distinct_3": float(np.mean([distinct_n(ws, 3) for ws in per_sample])),
            "repetition_rate": float(np.mean([repetition_rate(ws) for ws in per_sample]))}


def format_samples(seeds: list[dict], texts: list[str], vocab: dict) -> str:
    parts = []
    for i, (seed, generated) in enumerate(zip(seeds, texts), 1):
        where = f", offset {seed['offset']}" if "offset" in seed else ""
        parts.append(f"=== sample {i} of {len(texts)} ===\nseed ({seed['source']}{where}):\n"
                     f"{decode_chars(seed['ids'], vocab)}\ngenerated:\n{generated}\n")
    return "\n".join(parts)


def main(branch: str = "char") -> None:
    paths = branch_paths(branch)
    params = read_params("sample", PARAMS)
    vocab = read_vocab(paths["vocab"])
    train, val = load_windows(paths["train"], vocab), load_windows(paths["val"], vocab)
    rng = np.random.default_rng(params["seed"])
    seeds = choose_seeds(params, val["tokens"], vocab, rng)

    from lstm import Stepper, load_model
    model = load_model(paths["model"])
    if model.output_shape[-1] != len(vocab["tokens"]):
        raise UserError(f"{paths['model']} predicts {model.output_shape[-1]} tokens but {paths['vocab']} has "
                        f"{len(vocab['tokens'])}: they come from different runs; run `dvc repro train-lstm`")
    started = time.monotonic()
    ids = generate(Stepper(model), [s["ids"] for s in seeds], params["length"], params["temperature"],
                   params["top_k"], rng)
    seconds = time.monotonic() - started
    texts = [decode_chars(row, vocab) for row in ids]

    out = paths["sample"]
    write_text(out / "samples.txt", format_samples(seeds, texts, vocab))
    write_json(out / "provenance.json", {
        "branch": branch, "params": {"sample": params},
        "model": {"path": str(paths["model"]), "sha256": sha256_file(paths["model"])},
        "vocab": {"path": str(paths["vocab"]), "sha256": sha256_file(paths["vocab"])},
        "seeds": [{k: v for k, v in s.items() if k != "ids"} for s in seeds],
        "samples_sha256": sha256_file(out / "samples.txt")})
    training_words = set(words(decode_chars(train["tokens"], vocab)))
    write_json(out / "metrics.json", {"tokens_per_second": round(ids.size / seconds, 1),
                                      **text_metrics(texts, training_words)})


if __name__ == "__main__":
    run(lambda: main(*sys.argv[1:2]))
