"""train-lstm: fit the LSTM on one branch's training data, keep the best on validation.

    python stages/train_lstm.py <branch>      # char (stage train-lstm) or headlines (train-lstm-headlines)

Reads the branch's params section (named after its stage), training data and vocabulary;
writes data/models/<branch>.keras and, through DVCLive, metrics/train/<branch>/metrics.json
(summary) and plots/ (loss per epoch). Losses are cross-entropy in nats per token (a char, or a
word); bits = nats / ln 2; perplexity = e^nats.
"""

import math
import sys
import time

from common import (UserError, atomic_dir, atomic_path, branch_spec, dropout_rate, integer, load_split, non_negative_int,
                    positive_int, positive_number, read_params, read_vocab, run)

PARAMS = {"layers": positive_int, "units": positive_int, "embedding_dim": positive_int, "dropout": dropout_rate,
          "batch_size": positive_int, "epochs": positive_int, "learning_rate": positive_number,
          "seed": integer, "patience": non_negative_int}


def main(branch: str = "char") -> None:
    spec = branch_spec(branch)
    params = read_params(spec["train_stage"], PARAMS)
    vocab = read_vocab(spec["vocab"])
    train, val = (load_split(spec[s], vocab, spec["upstream"]) for s in ("train", "val"))

    import keras  # TensorFlow loads only once the inputs are known to be good
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback
    from lstm import build_model, device_and_kernel, split_dataset, targets_per_epoch

    keras.utils.set_random_seed(params["seed"])
    model = build_model(len(vocab["tokens"]), params["embedding_dim"], params["units"], params["layers"],
                        params["dropout"])
    # Padded targets weigh 0; the mean is over the tokens that count.
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]), loss=loss)
    device, kernel = device_and_kernel(model)
    unit = vocab.get("unit", "char")
    print(f"training {branch} on {device} with the {kernel} LSTM kernel: "
          f"{targets_per_epoch(train, vocab):,} {unit}s to predict per epoch", file=sys.stderr)

    batch = params["batch_size"]
    # DVCLive writes as it goes; into a hidden folder that replaces metrics/train/<branch> only
    # once training has finished, so a killed run leaves nothing that looks like a result.
    with atomic_dir(spec["live"]) as live_dir:
        live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False)
        started = time.monotonic()
        history = model.fit(
            split_dataset(train, vocab, batch, shuffle_seed=params["seed"]),
            validation_data=split_dataset(val, vocab, batch),
            epochs=params["epochs"], verbose=2, shuffle=False,  # the dataset shuffles itself
            callbacks=[keras.callbacks.EarlyStopping(patience=params["patience"] or params["epochs"],
                                                     restore_best_weights=True),
                       DVCLiveCallback(live=live)])
        seconds = time.monotonic() - started
        val_losses = history.history["val_loss"]
        best = min(val_losses)
        if not math.isfinite(best):
            raise UserError(f"training diverged (validation loss {best}); lower {spec['train_stage']}.learning_rate")
        with atomic_path(spec["model"], suffix=".keras") as tmp:
            model.save(tmp)  # the best epoch's weights: EarlyStopping restored them
        summary = {"best_val_loss": best, f"best_val_bits_per_{unit}": best / math.log(2),
                   "best_val_perplexity": math.exp(best), "best_epoch": val_losses.index(best) + 1,
                   "epochs_run": len(val_losses), "train_seconds": round(seconds, 1),
                   "tokens_per_second": round(len(val_losses) * targets_per_epoch(train, vocab) / seconds),
                   "device": device, "lstm_kernel": kernel}
        for name, value in summary.items():
            live.log_metric(name, value, plot=False)
        live.make_summary()
    print(f"best validation loss {best:.4f} nats/{unit} ({best / math.log(2):.3f} bits, perplexity "
          f"{math.exp(best):.1f}) at epoch {summary['best_epoch']} of {len(val_losses)}, {seconds:.0f}s on {device}",
          file=sys.stderr)


if __name__ == "__main__":
    run(lambda: main(*sys.argv[1:2]))
