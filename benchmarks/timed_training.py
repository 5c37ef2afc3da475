"""Training, time to quality: one method trained for a wall-clock budget on the project's Alice
data, in a process of its own so that its peak memory is its own (benchmarks/run.py runs both).

    python benchmarks/timed_training.py {tutorial,before,ours} --project DIR --minutes M --out FILE.json

Every method trains on the same text (the project's training split, data/windows/train.npy) and
is scored the same way: the held-out loss of predicting each character of the validation tail
from the 100 characters before it, in nats per character. `tutorial` is benchmarks/tutorial.py;
`ours` is train-lstm as the project's params.yaml sets it up (model, loss, optimizer, precision,
LSTM loop, input pipeline), scored on the weights it keeps (their moving average, with `ema`);
`before` is train-lstm as it was before issue 33, on the same params: Keras' own LSTM loop in
float32, Adam at a constant learning_rate, no clipping, no bias start, the raw weights.
The clock counts training only; it stops while the held-out loss is probed along the way.
"""

import argparse
import math
import os
import time
from pathlib import Path


import keras
import numpy as np

import tutorial
from lstm_textgen.branches import branch_spec, load_split
from lstm_textgen.files import write_json
from lstm_textgen.params import read_params
from lstm_textgen.vocab import read_vocab
from lstm_textgen import training

ROOT = Path(__file__).resolve().parents[1]

CONTEXT = tutorial.SEQ_LENGTH  # characters of context before each scored character
PROBES = 24                    # held-out loss measurements along the budget
PROBE_STRIDE = 10              # probes score every 10th held-out character; the final score all


def held_out(ids: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of CONTEXT ids and the id after each, every `stride` characters."""
    starts = np.arange(0, len(ids) - CONTEXT, stride)
    return ids[starts[:, None] + np.arange(CONTEXT)], ids[starts + CONTEXT]


def mean_nll(log_probs: np.ndarray, targets: np.ndarray) -> float:
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def tutorial_log_probs(model, windows: np.ndarray, vocab_size: int) -> np.ndarray:
    probs = model.predict(windows[..., None] / float(vocab_size), batch_size=512, verbose=0)
    return np.log(np.maximum(probs, 1e-7))  # Keras clips probabilities the same way in its loss


def ours_log_probs(model, windows: np.ndarray, vocab_size: int) -> np.ndarray:
    from lstm_textgen.model import holding_averaged_weights
    with holding_averaged_weights(model):
        logits = np.concatenate([model.predict_on_batch(windows[i:i + 512].astype(np.int32))[:, -1]
                                 for i in range(0, len(windows), 512)]).astype(np.float64)
    return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)


class Budget(keras.callbacks.Callback):
    """Stops training after `seconds` of it; probes the held-out loss every seconds / PROBES
    of training and at the end, with the clock stopped meanwhile."""

    def __init__(self, seconds: float, probe):
        super().__init__()
        self.seconds, self.probe = seconds, probe
        self.clock, self.batches, self.curve = 0.0, 0, []

    def on_train_begin(self, logs=None):
        self.last = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.clock += time.monotonic() - self.last
        self.batches += 1
        done = self.clock >= self.seconds
        if done or self.clock >= (len(self.curve) + 1) * self.seconds / PROBES:
            self.curve.append([round(self.clock, 1), round(self.probe(), 4)])
        if done:
            self.model.stop_training = True
        self.last = time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("method", choices=["tutorial", "before", "ours"])
    parser.add_argument("--project", type=Path, required=True, help="a project folder where `dvc repro window` has run")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    out = args.out.resolve()
    os.chdir(args.project)

    spec = branch_spec("char")
    vocab = read_vocab(spec["vocab"])
    vocab_size = len(vocab["tokens"])
    train, val = (load_split(spec[s], vocab, "window") for s in ("train", "val"))
    held_out_text = np.asarray(val["tokens"])  # a tenth of Alice: read whole
    probe_windows, probe_targets = held_out(held_out_text, PROBE_STRIDE)
    keras.utils.set_random_seed(1)

    started = time.monotonic()
    if args.method == "tutorial":
        x, y = tutorial.windows_as_floats(np.asarray(train["tokens"]), vocab_size)  # the tutorial's way: all in memory
        model = tutorial.build_model(vocab_size)
        log_probs, batch, fit_args, precision = tutorial_log_probs, tutorial.BATCH_SIZE, (x, y), "float32"
        data_bytes = x.nbytes + y.nbytes
        targets_per_batch = batch  # one character per window
    else:
        from lstm_textgen import model as lstm
        params = read_params("train-lstm", training.schema("char"))
        if args.method == "ours":
            setup = training.set_up(params, vocab, train, spec, "char", None)
            model, precision = setup.model, setup.precision
        else:
            model, precision = lstm.build_model(vocab_size, params["embedding_dim"], params["units"],
                                                params["layers"], params["dropout"]), "float32"
            model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        batch = params["batch_size"]
        dataset = lstm.split_dataset(train, vocab, batch, shuffle_seed=params["seed"])
        log_probs, fit_args = ours_log_probs, (dataset,)
        data_bytes = 0  # the text stays in its file, read a batch's windows at a time
        targets_per_batch = batch * train["seq_length"]  # a character at every position
    prepare_seconds = time.monotonic() - started

    budget = Budget(args.minutes * 60, lambda: mean_nll(log_probs(model, probe_windows, vocab_size), probe_targets))
    model.fit(*fit_args, batch_size=batch if args.method == "tutorial" else None, epochs=10**6, verbose=0,
              callbacks=[budget])
    windows, targets = held_out(held_out_text, 1)
    loss = mean_nll(log_probs(model, windows, vocab_size), targets)
    result = {"method": args.method, "precision": precision,
              "budget_seconds": args.minutes * 60, "train_seconds": round(budget.clock, 1),
              "prepare_seconds": round(prepare_seconds, 1), "parameters": model.count_params(),
              "training_data_mib": round(data_bytes / 2**20, 2),
              "held_out_loss": round(loss, 4), "held_out_bits_per_char": round(loss / math.log(2), 4),
              "held_out_characters": len(targets),
              "tokens_per_second": round(budget.batches * targets_per_batch / budget.clock),
              "curve": budget.curve}
    write_json(out, result)


if __name__ == "__main__":
    main()
