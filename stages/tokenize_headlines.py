"""tokenize-headlines: a CSV of headlines → word ids, for the headlines branch.

    python stages/tokenize_headlines.py      # run by `dvc repro tokenize-headlines`

Params: the `tokenize-headlines` section of params.yaml (source, sha256, column, cleaning switches,
        vocab_size, max_length, val_fraction, seed).
Reads:  the CSV that `source` names: a path, or an http(s) URL (GUTENBERG_MIRROR is tried first).
Writes: data/headlines/ (source.csv as read, vocab.json, train.npz, val.npz) and metrics/headlines.json.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np

from lstm_textgen.cleaning import clean_headline
from lstm_textgen.errors import UserError, run_stage
from lstm_textgen.files import atomic_dir, write_json
from lstm_textgen.headlines import build_word_vocab, coverage, get_source, headline_rows, read_headlines, split_headlines
from lstm_textgen.params import boolean, fraction, integer, list_of, non_empty_string, optional, positive_int, read_params

OUT_DIR = Path("data/headlines")
METRICS = Path("metrics/headlines.json")
CLEANING = ("repair_encoding", "ascii_fold", "lowercase", "strip_punctuation")
PARAMS = {"source": non_empty_string, "sha256": optional(non_empty_string), "column": non_empty_string,
          "drop_values": list_of(non_empty_string, non_empty=False),
          "repair_encoding": boolean, "ascii_fold": boolean, "lowercase": boolean, "strip_punctuation": boolean,
          "vocab_size": positive_int, "max_length": positive_int, "val_fraction": fraction, "seed": integer}


def main() -> None:
    params = read_params("tokenize-headlines", PARAMS)
    with atomic_dir(OUT_DIR) as tmp:
        csv = tmp / "source.csv"
        get_source(params["source"], csv)
        digest = hashlib.sha256(csv.read_bytes()).hexdigest()
        if params["sha256"] and digest != params["sha256"].lower():
            raise UserError(f"{params['source']} has sha256 {digest}, not the pinned {params['sha256']}: the file "
                            "changed. Check it, then set tokenize-headlines.sha256 to the new value (or null)")
        raw = read_headlines(csv, params["column"], params["source"])
        drop = set(params["drop_values"])
        kept = [h for h in raw if h.strip() not in drop]
        cleaned, repaired = [], 0
        cleaning = {key: params[key] for key in CLEANING}
        for headline in kept:
            words, fixed = clean_headline(headline, **cleaning)
            repaired += fixed
            if words:
                cleaned.append(words)
        if not cleaned:
            raise UserError(f"{params['source']}: no headlines left out of {len(raw)} rows after dropping "
                            f"{sorted(drop)} and empty ones; check tokenize-headlines.column and drop_values")
        train, val = split_headlines(cleaned, params["val_fraction"], params["seed"])
        if not train:
            raise UserError(f"{params['source']}: only {len(set(cleaned))} distinct headlines, too few to "
                            "hold some out; add rows or lower tokenize-headlines.val_fraction")
        train_words, val_words = [h.split() for h in train], [h.split() for h in val]
        vocab = build_word_vocab(train_words, params["vocab_size"], cleaning)
        write_json(tmp / "vocab.json", vocab)
        cut = 0
        for name, split in (("train", train_words), ("val", val_words)):
            rows, n_cut = headline_rows(split, vocab, params["max_length"])
            cut += n_cut
            with open(tmp / f"{name}.npz", "wb") as f:
                np.savez(f, rows=rows)

    known = set(vocab["tokens"])
    write_json(METRICS, {"rows_read": len(raw), "rows_dropped": len(raw) - len(kept),
                         "rows_empty_after_cleaning": len(kept) - len(cleaned), "rows_repaired": repaired,
                         "duplicates": len(cleaned) - len(set(cleaned)), "headlines_train": len(train),
                         "headlines_val": len(val), "headlines_cut": cut, "vocab_size": len(vocab["tokens"]),
                         "coverage_train": coverage(train_words, known), "coverage_val": coverage(val_words, known)})
    print(f"{len(train)} training and {len(val)} validation headlines, {len(vocab['tokens'])} words", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
