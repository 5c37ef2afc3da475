"""encode-vocab: the character vocabulary and the corpus as a compact array of ids.

Reads data/clean/corpus.txt and cleaning.json; writes data/vocab/chars.json (sorted tokens;
`unknown` names the token rare characters were folded into, or is null; `cleaning` how the text
was cleaned, so prompts are cleaned alike), data/vocab/ids.npy and metrics/vocab.json.
"""

import json
from pathlib import Path

import numpy as np

from errors import UserError, run
from files import atomic_path, write_json
from params import positive_int, read_params
from vocab import build_char_vocab, encode_chars

CORPUS = Path("data/clean/corpus.txt")
CLEANING = Path("data/clean/cleaning.json")
VOCAB = Path("data/vocab/chars.json")
IDS = Path("data/vocab/ids.npy")
METRICS = Path("metrics/vocab.json")
PARAMS = {"min_count": positive_int}


def main() -> None:
    params = read_params("encode-vocab", PARAMS)
    try:
        corpus = CORPUS.read_text(encoding="utf-8")
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {CORPUS} ({err}); run `dvc repro strip-boilerplate`")
    if not corpus.strip():
        raise UserError(f"{CORPUS} is empty: there is no text to learn from; check download-gutenberg.book_ids")
    try:
        cleaning = json.loads(CLEANING.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {CLEANING} ({err}); run `dvc repro strip-boilerplate`")
    vocab = build_char_vocab(corpus, params["min_count"]) | {"cleaning": cleaning}
    ids = encode_chars(corpus, vocab, str(CORPUS))
    write_json(VOCAB, vocab)
    with atomic_path(IDS, suffix=".npy") as tmp:
        np.save(tmp, ids)
    unknown = vocab["tokens"].index(vocab["unknown"]) if vocab["unknown"] else None
    write_json(METRICS, {"vocab_size": len(vocab["tokens"]), "tokens": int(ids.size),
                         "unknown_tokens": int(np.sum(ids == unknown)) if unknown is not None else 0})


if __name__ == "__main__":
    run(main)
