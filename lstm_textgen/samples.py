"""What the sample stage writes: sample texts for each branch, drawn by the sampler, and measures
of how word-like and varied they are."""

from __future__ import annotations

import re

import numpy as np

from lstm_textgen.sampling import banned_ids, encode_prompt, generate, validation_seeds
from lstm_textgen.vocab import decode_chars


def words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)*", text.lower())


def ngrams(tokens: list, n: int) -> list[tuple]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: list, n: int) -> float:
    """Share of n-grams that are distinct (1.0: nothing repeats)."""
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: list, n: int = 4) -> float:
    """Share of n-grams that already occurred earlier in the same text: loops score high."""
    grams = ngrams(tokens, n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def char_metrics(samples: list[str], training_words: set) -> dict:
    per_sample = [words(s) for s in samples]
    all_words = [w for ws in per_sample for w in ws]
    return {"known_word_share": sum(w in training_words for w in all_words) / len(all_words) if all_words else 0.0,
            "distinct_2": float(np.mean([distinct_n(ws, 2) for ws in per_sample])),
            "distinct_3": float(np.mean([distinct_n(ws, 3) for ws in per_sample])),
            "repetition_rate": float(np.mean([repetition_rate(ws) for ws in per_sample]))}


def headline_metrics(headlines: list[list[str]], generated: list[list[str]], training: set, unknown: str) -> dict:
    all_generated = [w for g in generated for w in g]
    return {"copied_share": sum(" ".join(h) in training for h in headlines) / len(headlines),
            "distinct_1": distinct_n(all_generated, 1), "distinct_2": distinct_n(all_generated, 2),
            "unknown_share": all_generated.count(unknown) / len(all_generated) if all_generated else 0.0}


def sample_chars(params, stepper, vocab, train, val, rng) -> tuple[str, dict, list, int]:
    """`num_samples` texts of `length` characters, each after a seed: `seed_text`, or a window
    of the validation text chosen by the RNG."""
    if params["seed_text"] is not None:
        ids = encode_prompt(params["seed_text"], vocab, "params.yaml: sample.seed_text")
        seeds = [{"source": "params.yaml", "ids": ids}] * params["num_samples"]
    else:
        seeds = [{"source": "validation text", "offset": offset, "ids": ids}
                 for offset, ids in validation_seeds(val["tokens"], params["seed_length"], params["num_samples"], rng)]
    rows = generate(stepper, [s["ids"] for s in seeds], params["length"], params["temperature"], params["top_k"], rng,
                    top_p=params["top_p"], banned=banned_ids(vocab))
    texts = [decode_chars(row, vocab) for row in rows]
    out = []
    for i, (seed, generated) in enumerate(zip(seeds, texts), 1):
        where = f", offset {seed['offset']}" if "offset" in seed else ""
        out.append(f"=== sample {i} of {len(texts)} ===\nseed ({seed['source']}{where}):\n"
                   f"{decode_chars(seed['ids'], vocab)}\ngenerated:\n{generated}\n")
    training_words = set(words(decode_chars(train["tokens"], vocab)))
    seeds = [{k: v for k, v in s.items() if k != "ids"} for s in seeds]
    return "\n".join(out), char_metrics(texts, training_words), seeds, sum(map(len, rows))


def sample_headlines(params, stepper, vocab, train, val, rng) -> tuple[str, dict, list, int]:
    """One headline per seed phrase: the seed, then up to `max_words` words or the end token;
    title-cased as in the tutorial."""
    tokens, unknown = vocab["tokens"], vocab["unknown"]
    lines, headlines, generated, seeds = [], [], [], []
    for phrase in params["seeds"]:
        ids = encode_prompt(phrase, vocab, "params.yaml: sample-headlines.seeds")
        seed_words = [tokens[i] for i in ids]
        row = generate(stepper, [ids], params["max_words"], params["temperature"], params["top_k"], rng,
                       end_id=tokens.index(vocab["end"]), top_p=params["top_p"], banned=banned_ids(vocab))[0]
        new_words = [tokens[i] for i in row]
        headline = seed_words + new_words
        headlines.append(headline)
        generated.append(new_words)
        seeds.append({"phrase": phrase, "words": seed_words})
        lines.append(" ".join(w if w == unknown else w.title() for w in headline))
    pad = tokens.index(vocab["pad"])
    training = {" ".join(tokens[i] for i in row if i != pad and tokens[i] != vocab["end"]) for row in train["rows"]}
    metrics = headline_metrics(headlines, generated, training, unknown)
    return "\n".join(lines) + "\n", metrics, seeds, sum(map(len, generated)) + len(generated)  # + the end tokens


def preview(text: str, lines: int = 6) -> str:
    """The start of what the model wrote, for the console: the first char sample's generated text
    (without its seed and headings), or the first headlines."""
    if text.startswith("=== sample"):
        text = text.split("generated:\n", 1)[1].split("\n=== sample", 1)[0].strip("\n")
    head = text.splitlines()[:lines]
    return "\n".join(f"  {line}" for line in head) + ("\n  ..." if len(text.splitlines()) > lines else "")


def next_step(branch: str, text: str) -> str:
    """What to run next, with a prompt the model can read (its own first words)."""
    words = re.sub(r"[^\w ]+", "", preview(text, 1)).split()[:2] or ["the"]  # nothing a shell would read
    if branch == "headlines":
        return f'next: lstm-textgen generate --branch headlines "{" ".join(words).lower()}"   (your own words: --help)'
    return f'next: lstm-textgen generate "{" ".join(words)}"   (your own prompt; --help lists the settings)'
