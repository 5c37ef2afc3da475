"""encode-vocab: the character vocabulary, and the corpus as a compact array of ids.

    python stages/encode_vocab.py      # run by `dvc repro encode-vocab`

Params: the `encode-vocab` section of params.yaml (min_count, base_vocab).
Reads:  data/clean/corpus.txt and cleaning.json; a base model's data/base/chars.json, with base_vocab.
Writes: data/vocab/chars.json (the tokens, the unknown token, the cleaning), data/vocab/ids.npy and
        metrics/vocab.json.

With base_vocab the vocabulary is the base model's, token for token, so the ids mean what it
learnt. The corpus is read a piece at a time, twice (to count, then to encode).
"""

import json
from pathlib import Path

from lstm_textgen.errors import UserError, run_stage
from lstm_textgen.files import Pieces, text_pieces, write_json, write_npy
from lstm_textgen.params import base_file, positive_int, read_params
from lstm_textgen.vocab import char_vocab, count_chars, encode_chars, id_dtype, on_base, outside_vocab, read_base_vocab

CORPUS = Path("data/clean/corpus.txt")
CLEANING = Path("data/clean/cleaning.json")
VOCAB = Path("data/vocab/chars.json")
IDS = Path("data/vocab/ids.npy")
METRICS = Path("metrics/vocab.json")
PARAMS = {"min_count": positive_int, "base_vocab": base_file(".json", "data/base/chars.json")}


def unreadable(err: Exception) -> UserError:
    return UserError(f"cannot read {CORPUS} ({err}); run `dvc repro strip-boilerplate`")


def main() -> None:
    params = read_params("encode-vocab", PARAMS)
    try:
        counts = count_chars(text_pieces(CORPUS))
    except (OSError, ValueError) as err:
        raise unreadable(err)
    if all(c.isspace() for c in counts):
        raise UserError(f"{CORPUS} is empty: there is no text to learn from; check download-gutenberg.book_ids and texts")
    try:
        cleaning = json.loads(CLEANING.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {CLEANING} ({err}); run `dvc repro strip-boilerplate`")
    if params["base_vocab"]:
        path = params["base_vocab"]
        vocab = on_base(read_base_vocab(path), path, counts, cleaning, CORPUS)
    else:
        vocab = char_vocab(counts, params["min_count"]) | {"cleaning": cleaning}
    write_json(VOCAB, vocab)
    tokens = sum(counts.values())
    ids = (encode_chars(piece, vocab, str(CORPUS)) for piece in text_pieces(CORPUS))
    try:
        write_npy(IDS, Pieces(id_dtype(len(vocab["tokens"])), (tokens,), ids))
    except (OSError, ValueError) as err:  # the corpus changed, or went, since it was counted
        raise unreadable(err)
    outside = outside_vocab(counts, vocab)  # the unknown token stands for itself and these
    write_json(METRICS, {"vocab_size": len(vocab["tokens"]), "tokens": tokens, "unknown_tokens": sum(outside.values()),
                         "unknown_characters": len(outside)})


if __name__ == "__main__":
    run_stage(main)
