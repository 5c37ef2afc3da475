"""encode-vocab: the character vocabulary and the corpus as a compact array of ids.

Reads data/clean/corpus.txt and cleaning.json; writes data/vocab/chars.json (sorted tokens;
`unknown` names the token rare characters were folded into, or is null; `cleaning` how the text
was cleaned, so prompts are cleaned alike), data/vocab/ids.npy and metrics/vocab.json.

The corpus is read twice, a piece at a time: once to count its characters, once to write their
ids; neither the text nor its ids are ever held whole.
"""

import json
from pathlib import Path

from errors import UserError, run
from files import Pieces, text_pieces, write_json, write_npy
from params import positive_int, read_params
from vocab import char_vocab, count_chars, encode_chars, id_dtype

CORPUS = Path("data/clean/corpus.txt")
CLEANING = Path("data/clean/cleaning.json")
VOCAB = Path("data/vocab/chars.json")
IDS = Path("data/vocab/ids.npy")
METRICS = Path("metrics/vocab.json")
PARAMS = {"min_count": positive_int}


def unreadable(err: Exception) -> UserError:
    return UserError(f"cannot read {CORPUS} ({err}); run `dvc repro strip-boilerplate`")


def main() -> None:
    params = read_params("encode-vocab", PARAMS)
    try:
        counts = count_chars(text_pieces(CORPUS))
    except (OSError, ValueError) as err:
        raise unreadable(err)
    if all(c.isspace() for c in counts):
        raise UserError(f"{CORPUS} is empty: there is no text to learn from; check download-gutenberg.book_ids")
    try:
        cleaning = json.loads(CLEANING.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {CLEANING} ({err}); run `dvc repro strip-boilerplate`")
    vocab = char_vocab(counts, params["min_count"]) | {"cleaning": cleaning}
    write_json(VOCAB, vocab)
    tokens = sum(counts.values())
    ids = (encode_chars(piece, vocab, str(CORPUS)) for piece in text_pieces(CORPUS))
    try:
        write_npy(IDS, Pieces(id_dtype(len(vocab["tokens"])), (tokens,), ids))
    except (OSError, ValueError) as err:  # the corpus changed, or went, since it was counted
        raise unreadable(err)
    kept = set(vocab["tokens"]) - {vocab["unknown"]}  # the unknown token stands for itself and the rest
    unknown = sum(n for c, n in counts.items() if c not in kept) if vocab["unknown"] else 0
    write_json(METRICS, {"vocab_size": len(vocab["tokens"]), "tokens": tokens, "unknown_tokens": unknown})


if __name__ == "__main__":
    run(main)
