"""sample: text from a branch's trained model, carrying the LSTM state token by token.

    python stages/sample.py char         # run by `dvc repro sample`
    python stages/sample.py headlines    # run by `dvc repro sample-headlines`

Params: the section named after the stage: `sample` or `sample-headlines`.
Reads:  data/models/<branch>.npz, the branch's vocabulary and data.
Writes: metrics/sample/<branch>/samples.txt, provenance.json (the params, model and vocabulary
        hashes that produced it), run.json (speed; how word-like, original and varied the text is)
        and metrics.json (the two of those DVC shows: text_measures.HEADLINE).
"""

import sys

import numpy as np

from lstm_textgen.branches import branch_spec, load_split
from lstm_textgen.errors import run_stage
from lstm_textgen.files import sha256_file, write_json, write_text
from lstm_textgen.params import (integer, list_of, non_empty_string, optional, positive_int, positive_number,
                                 probability, read_params)
from lstm_textgen.sampling import (Stepper, check_model_matches, load_weights, next_step, preview, sample_chars,
                                   sample_headlines)
from lstm_textgen.text_measures import headline
from lstm_textgen.vocab import read_vocab

COMMON_PARAMS = {"temperature": positive_number, "top_k": optional(positive_int), "top_p": optional(probability),
                 "seed": integer}
PARAMS = {
    "char": {"length": positive_int, "seed_text": optional(non_empty_string), "seed_length": positive_int,
             "num_samples": positive_int, **COMMON_PARAMS},
    "headlines": {"seeds": list_of(non_empty_string), "max_words": positive_int, **COMMON_PARAMS},
}
def main(branch: str = "char") -> None:
    spec = branch_spec(branch)
    params = read_params(spec["sample_stage"], PARAMS[branch])
    vocab = read_vocab(spec["vocab"])
    train, val = (load_split(spec[s], vocab, spec["upstream"]) for s in ("train", "val"))
    rng = np.random.default_rng(params["seed"])

    stepper = Stepper(load_weights(spec["weights"], spec["train_stage"]))
    check_model_matches(spec, stepper.vocab_size, vocab)
    text, metrics, seeds, speed = (sample_chars if branch == "char" else sample_headlines)(
        params, stepper, vocab, train, val, rng)

    out = spec["sample"]
    write_text(out / "samples.txt", text)
    write_json(out / "provenance.json", {
        "branch": branch, "params": {spec["sample_stage"]: params},
        "model": {"path": str(spec["weights"]), "sha256": sha256_file(spec["weights"])},
        "vocab": {"path": str(spec["vocab"]), "sha256": sha256_file(spec["vocab"])},
        "seeds": seeds, "samples_sha256": sha256_file(out / "samples.txt")})
    run = {"tokens_per_second": round(speed, 1), **metrics}
    write_json(out / "run.json", run)
    write_json(out / "metrics.json", headline(run, branch))
    print(f"wrote {out / 'samples.txt'}; the model wrote:\n{preview(text)}\n{next_step(branch, text)}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(lambda: main(*sys.argv[1:2]))
