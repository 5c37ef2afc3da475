"""train-lstm: fit the LSTM on one branch's training windows, keep the best on validation.

    python stages/train_lstm.py <branch>

Reads the branch's windows and vocabulary; writes data/models/<branch>.keras and, through
DVCLive, metrics/train/<branch>/metrics.json (summary) and plots/ (loss per epoch).
Losses are cross-entropy in nats per token; bits per char = nats / ln 2; perplexity = e^nats.
"""

import math
import sys
import time

from common import (UserError, atomic_path, branch_paths, dropout_rate, load_windows, positive_int,
                    positive_number, integer, non_negative_int, read_params, read_vocab, run)

PARAMS = {"layers": positive_int, "units": positive_int, "embedding_dim": positive_int, "dropout": dropout_rate,
          "batch_size": positive_int, "epochs": positive_int, "learning_rate": positive_number,
          "seed": integer, "patience": non_negative_int}


def main(branch: str = "char") -> None:
    paths = branch_paths(branch)
    params = read_params("train-lstm", PARAMS)
    vocab = read_vocab(paths["vocab"])
    train, val = load_windows(paths["train"], vocab), load_windows(paths["val"], vocab)

    import keras  # TensorFlow loads only once the inputs are known to be good
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback
    from lstm import build_model, device_and_kernel, window_dataset

    keras.utils.set_random_seed(params["seed"])
    model = build_model(len(vocab["tokens"]), params["embedding_dim"], params["units"], params["layers"],
                        params["dropout"])
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    device, kernel = device_and_kernel(model)
    print(f"training {branch} on {device} with the {kernel} LSTM kernel: "
          f"{len(train['starts']):,} windows of {train['seq_length']} tokens", file=sys.stderr)

    batch = params["batch_size"]
    live = Live(str(paths["live"]), dvcyaml=False, save_dvc_exp=False)
    started = time.monotonic()
    history = model.fit(
        window_dataset(train["tokens"], train["starts"], train["seq_length"], batch, shuffle_seed=params["seed"]),
        validation_data=window_dataset(val["tokens"], val["starts"], val["seq_length"], batch),
        epochs=params["epochs"], verbose=2, shuffle=False,  # the dataset shuffles itself
        callbacks=[keras.callbacks.EarlyStopping(patience=params["patience"] or params["epochs"],
                                                 restore_best_weights=True),
                   DVCLiveCallback(live=live)])
    seconds = time.monotonic() - started
    val_losses = history.history["val_loss"]
    best = min(val_losses)
    if not math.isfinite(best):
        raise UserError(f"training diverged (validation loss {best}); lower train-lstm.learning_rate")
    with atomic_path(paths["model"], suffix=".keras") as tmp:
        model.save(tmp)  # the best epoch's weights: EarlyStopping restored them
    for name, value in {"best_val_loss": best, "best_val_bits_per_char": best / math.log(2),
                        "best_val_perplexity": math.exp(best), "best_epoch": val_losses.index(best) + 1,
                        "epochs_run": len(val_losses), "train_seconds": round(seconds, 1),
                        "tokens_per_second": round(len(val_losses) * len(train["starts"]) * train["seq_length"] / seconds),
                        "device": device, "lstm_kernel": kernel}.items():
        live.log_metric(name, value, plot=False)
    live.make_summary()
    print(f"best validation loss {best:.4f} nats/token ({best / math.log(2):.3f} bits) at epoch "
          f"{val_losses.index(best) + 1} of {len(val_losses)}, {seconds:.0f}s on {device}", file=sys.stderr)


if __name__ == "__main__":
    run(lambda: main(*sys.argv[1:2]))
