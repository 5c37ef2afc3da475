"""encode-vocab: the character vocabulary and the corpus as a compact array of ids.

Reads data/clean/corpus.txt; writes data/vocab/chars.json (sorted tokens; `unknown` names the
token rare characters were folded into, or is null), data/vocab/ids.npy and metrics/vocab.json.
"""

from pathlib import Path

import numpy as np

from common import UserError, atomic_path, build_char_vocab, encode_chars, positive_int, read_params, run, write_json

CORPUS = Path("data/clean/corpus.txt")
VOCAB = Path("data/vocab/chars.json")
IDS = Path("data/vocab/ids.npy")
METRICS = Path("metrics/vocab.json")
PARAMS = {"min_count": positive_int}


def main() -> None:
    params = read_params("encode-vocab", PARAMS)
    try:
        corpus = CORPUS.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {CORPUS} ({err}); run `dvc repro strip-boilerplate`")
    if not corpus.strip():
        raise UserError(f"{CORPUS} is empty: there is no text to learn from; check download-gutenberg.book_ids")
    vocab = build_char_vocab(corpus, params["min_count"])
    ids = encode_chars(corpus, vocab, str(CORPUS))
    write_json(VOCAB, vocab)
    with atomic_path(IDS, suffix=".npy") as tmp:
        np.save(tmp, ids)
    unknown = vocab["tokens"].index(vocab["unknown"]) if vocab["unknown"] else None
    write_json(METRICS, {"vocab_size": len(vocab["tokens"]), "tokens": int(ids.size),
                         "unknown_tokens": int(np.sum(ids == unknown)) if unknown is not None else 0})


if __name__ == "__main__":
    run(main)
