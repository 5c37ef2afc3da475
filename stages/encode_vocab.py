"""encode-vocab: the character vocabulary and the corpus as a compact array of ids.

Reads data/clean/corpus.txt and cleaning.json; writes data/vocab/chars.json (sorted tokens;
`unknown` names the token rare characters were folded into, or is null; `cleaning` how the text
was cleaned, so prompts are cleaned alike), data/vocab/ids.npy and metrics/vocab.json.

With `base_vocab` (a base model's chars.json, in data/base/), the vocabulary is the base's, token
for token, so that the ids mean what the base model learnt; `base` in chars.json records it. The
corpus' characters outside it map to its unknown token, and metrics/vocab.json counts them.

The corpus is read twice, a piece at a time: once to count its characters, once to write their
ids; neither the text nor its ids are ever held whole.
"""

import json
import sys
from pathlib import Path

from errors import UserError, run
from files import Pieces, sha256_file, text_pieces, write_json, write_npy
from params import base_file, positive_int, read_params
from vocab import char_vocab, count_chars, encode_chars, id_dtype, outside_vocab

CORPUS = Path("data/clean/corpus.txt")
CLEANING = Path("data/clean/cleaning.json")
VOCAB = Path("data/vocab/chars.json")
IDS = Path("data/vocab/ids.npy")
METRICS = Path("metrics/vocab.json")
PARAMS = {"min_count": positive_int, "base_vocab": base_file(".json", "data/base/chars.json")}


def read_base_vocab(path: str) -> dict:
    """A base model's character vocabulary, as its encode-vocab wrote it."""
    try:
        base = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"params.yaml: encode-vocab.base_vocab = {path!r}: no such file. Bring the base model's "
                        f"vocabulary in with `dvc import <base repo> data/vocab/chars.json -o {path}` (README, "
                        "'Fine-tuning a base model'), or `dvc pull` if this project imports it already")
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the base vocabulary {path} ({err}); `dvc update {path}.dvc` fetches it again")
    if not (isinstance(base, dict) and base.get("unit") == "char" and isinstance(base.get("tokens"), list)):
        raise UserError(f"{path} is not a character vocabulary (data/vocab/chars.json of a project like this one)")
    return base


def on_base(base: dict, path: str, counts: dict, cleaning: dict) -> dict:
    """The vocabulary for a corpus (`counts`) trained on from a base model: the base's tokens;
    a corpus character outside them is refused by name if the base has no unknown token."""
    outside = outside_vocab(counts, base)
    if outside and not base.get("unknown"):
        shown = ", ".join(f"{c!r} ({n:,})" for c, n in sorted(outside.items(), key=lambda cn: -cn[1])[:20])
        raise UserError(
            f"{CORPUS} has {len(outside)} characters that the base vocabulary {path} lacks, and it has no unknown "
            f"token to map them to: {shown}. Clean them away (strip-boilerplate.lowercase, ascii_punctuation), "
            "or pretrain the base with encode-vocab.min_count of 2 or more, so that its rare characters share "
            "an unknown token")
    if base.get("cleaning") not in (None, cleaning):
        print(f"warning: the base model's text was cleaned with {base['cleaning']}, this corpus with {cleaning}: "
              f"{sum(outside.values()):,} characters fall outside its vocabulary", file=sys.stderr)
    return {"unit": "char", "tokens": base["tokens"], "unknown": base.get("unknown"), "cleaning": cleaning,
            "base": {"path": path, "sha256": sha256_file(path)}}


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
        vocab = on_base(read_base_vocab(path), path, counts, cleaning)
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
    run(main)
