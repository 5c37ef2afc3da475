"""train-lstm: fit the LSTM on one branch's training data; keep the best epoch on validation.

    python stages/train_lstm.py char         # run by `dvc repro train-lstm`
    python stages/train_lstm.py headlines    # run by `dvc repro train-lstm-headlines`

Params: the section named after the stage: `train-lstm` or `train-lstm-headlines` (the model's
        shape, the recipe: epochs, max_tokens, the learning-rate schedule, clipnorm, ema,
        unigram_bias, precision; seed, patience, distribute; for char init_from). docs/pipeline.md
        says what each does.
Reads:  the branch's windows (or headline rows) and vocabulary; a base model, with init_from.
Writes: data/models/<branch>.keras, data/models/<branch>.npz (the same weights as NumPy arrays, for
        the sampler) and metrics/train/<branch>/: run.json (the scores and how training ran),
        metrics.json (the headline scores DVC shows), loss.tsv (train and validation loss per epoch)
        and DVCLive's plots/.

A killed run resumes exactly from data/checkpoints/<branch>/ (lstm_textgen/training.py says how).
With `distribute: multi_worker`, every machine that TF_CONFIG lists runs this script; only the
chief (worker 0) writes anything.
"""

import math
import shutil
import sys

from lstm_textgen.branches import branch_spec, load_split
from lstm_textgen.errors import run_stage
from lstm_textgen.files import atomic_dir, atomic_path, write_json, write_npz
from lstm_textgen.params import read_params
from lstm_textgen.training import (BASE_RECORD, CHECKPOINTS, LOSS_TABLE, check_base_model, check_recipe, fit,
                                   headline, loss_table, outcome_shared, role_of, schema, set_up, summary,
                                   targets_per_epoch, waiting_for_the_others, where_to_start)
from lstm_textgen.vocab import read_vocab


def main(branch: str = "char") -> None:
    spec = branch_spec(branch)
    params = read_params(spec["train_stage"], schema(branch))
    check_recipe(params, spec["train_stage"])
    role = role_of(params, spec["train_stage"])
    vocab = read_vocab(spec["vocab"])
    train, val = (load_split(spec[s], vocab, spec["upstream"]) for s in ("train", "val"))
    base = check_base_model(params, vocab, spec) if params.get("init_from") else None

    # TensorFlow loads only now, once the inputs are known to be good.
    with waiting_for_the_others(role, params["worker_timeout"], spec["train_stage"]):
        setup = set_up(params, vocab, train, spec, branch, base)
        worker = (f"worker {role.index} of {role.count} ({'the chief' if role.chief else 'writes nothing'}): "
                  if role.count > 1 else "")
        timed = " and ".join(f"{p} {v:,}" for p, v in setup.speeds.items())
        print(f"{worker}training {branch} on {setup.device} with the {setup.kernel} LSTM kernel in {setup.precision}"
              + (f" (tokens/s in a short trial: {timed})" if timed else "")
              + f": {targets_per_epoch(train, vocab):,} {vocab.get('unit', 'char')}s to predict per epoch",
              file=sys.stderr)
        done, so_far = where_to_start(setup, params, spec, branch, role, len(vocab["tokens"]))
    seconds = fit(setup, params, vocab, train, val, branch, role, done, so_far, base)
    with outcome_shared(setup, role):  # every worker exits as the run ended, the chief's writing included
        if role.chief:
            scores = write_results(setup, params, spec, branch, vocab, done, seconds, role, base)
    if not role.chief:
        print(f"{worker}done; worker 0 wrote the model and the metrics", file=sys.stderr)
        return
    best, unit = scores["best_val_loss"], vocab.get("unit", "char")
    print(f"best validation loss {best:.4f} nats/{unit} ({best / math.log(2):.3f} bits, perplexity "
          f"{math.exp(best):.1f}) at epoch {scores['best_epoch']} of {scores['epochs_run']}, {seconds:.0f}s on "
          f"{setup.device}", file=sys.stderr)


def write_results(setup, params, spec, branch, vocab, done, seconds, role, base) -> dict:
    """The model, its NumPy weights and metrics/train/<branch>, from the finished training. The
    log replaces metrics/train/<branch> only now: a killed run leaves nothing there that looks
    like a result."""
    from lstm_textgen.model import portable, sampler_weights

    checkpoint = CHECKPOINTS / branch
    scores = summary(setup, checkpoint / "live", params, spec["train_stage"], vocab, done, seconds, role, base)
    table = loss_table(checkpoint / "live")  # read before anything is written: a bad log leaves the old model
    model = portable(setup.model)  # the best epoch's weights (EarlyStopping restored them), as Keras' LSTM in float32
    with atomic_path(spec["model"], suffix=".keras") as tmp:
        model.save(tmp)
    write_npz(spec["weights"], **sampler_weights(model))
    with atomic_dir(spec["live"]) as out:
        shutil.copytree(checkpoint / "live", out, dirs_exist_ok=True)
        (out / LOSS_TABLE).write_text(table, encoding="utf-8")
        write_json(out / "run.json", scores)
        write_json(out / "metrics.json", headline(scores, branch))  # DVC's metric: the headline alone
        if base:
            write_json(out / BASE_RECORD, base)
    shutil.rmtree(checkpoint)
    return scores


if __name__ == "__main__":
    run_stage(lambda: main(*sys.argv[1:2]))
