"""train-lstm: fit the LSTM on one branch's training data, keep the best on validation.

    python stages/train_lstm.py <branch>      # char (stage train-lstm) or headlines (train-lstm-headlines)

Reads the branch's params section (named after its stage), training data and vocabulary;
writes data/models/<branch>.keras and, through DVCLive, metrics/train/<branch>/metrics.json
(summary) and plots/ (loss per epoch). Losses are cross-entropy in nats per token (a char, or a
word); bits = nats / ln 2; perplexity = e^nats. `distribute: mirrored` trains a copy of the model
on every GPU with tf.distribute.MirroredStrategy, batch_size being the global batch.

A run that is killed resumes: after every epoch, Keras' BackupAndRestore saves the weights,
the optimizer state and the epoch counter to data/checkpoints/<branch>/ (beside DVCLive's log
so far), and the next run continues from there, unless its params (other than epochs and
patience) or its data differ, in which case it starts fresh and says why. The folder is
removed once training has finished.
"""

import json
import math
import shutil
import sys
import time
from pathlib import Path

from common import (UserError, atomic_dir, atomic_path, branch_spec, dropout_rate, integer, load_split, non_negative_int,
                    one_of, positive_int, positive_number, read_params, read_vocab, run, sha256_file, write_json,
                    write_text)

PARAMS = {"layers": positive_int, "units": positive_int, "embedding_dim": positive_int, "dropout": dropout_rate,
          "batch_size": positive_int, "epochs": positive_int, "learning_rate": positive_number,
          "seed": integer, "patience": non_negative_int, "distribute": one_of("one_device", "mirrored")}


CHECKPOINTS = Path("data/checkpoints")
NOT_BINDING = ("epochs", "patience")  # a resumed run may change these


def prepare_checkpoint(folder: Path, fingerprint: dict) -> tuple[int, str | None]:
    """Keep what an interrupted run with the same fingerprint left in `folder`, or empty it.
    Returns the epochs already done and what to tell the user."""
    saved, metadata = folder / "fingerprint.json", folder / "backup" / "training_metadata.json"
    note = None
    if saved.exists():
        try:
            old = json.loads(saved.read_text())
            done = json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0
        except (ValueError, KeyError):
            old, done = {}, 0
        if old == fingerprint and done:
            return done, f"resuming the interrupted run after epoch {done} (from {folder})"
        changed = sorted(k for part in ("params", "data") for k in fingerprint[part]
                         if old.get(part, {}).get(k) != fingerprint[part][k])
        note = f"starting fresh: the checkpoint in {folder} was made with a different {', '.join(changed) or 'state'}"
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(saved, fingerprint)
    return 0, note


def compiled_model(params: dict, vocab_size: int):
    """The model, its loss and optimizer, made under the `distribute` strategy; and the strategy."""
    import keras
    from lstm import build_model, distribution

    keras.utils.set_random_seed(params["seed"])
    strategy = distribution(params["distribute"])
    with strategy.scope():  # variables made here are mirrored on every replica (a no-op for one_device)
        model = build_model(vocab_size, params["embedding_dim"], params["units"], params["layers"], params["dropout"])
        # Padded targets weigh 0; the mean is over the tokens that count.
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]), loss=loss)
    return model, strategy


def keep_logged_epochs(live_dir: Path, done: int) -> None:
    """Drop the rows of DVCLive's per-epoch logs past the `done` epochs a checkpoint holds."""
    for log in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        header, *rows = log.read_text().splitlines(keepends=True)
        write_text(log, header + "".join(row for row in rows if int(row.split("\t", 1)[0]) < done))


def main(branch: str = "char") -> None:
    spec = branch_spec(branch)
    params = read_params(spec["train_stage"], PARAMS)
    vocab = read_vocab(spec["vocab"])
    train, val = (load_split(spec[s], vocab, spec["upstream"]) for s in ("train", "val"))

    import keras  # TensorFlow loads only once the inputs are known to be good
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback
    from lstm import device_and_kernel, split_dataset, targets_per_epoch

    model, strategy = compiled_model(params, len(vocab["tokens"]))
    device, kernel = device_and_kernel(model, strategy)
    unit = vocab.get("unit", "char")
    print(f"training {branch} on {device} with the {kernel} LSTM kernel: "
          f"{targets_per_epoch(train, vocab):,} {unit}s to predict per epoch", file=sys.stderr)

    checkpoint = CHECKPOINTS / branch
    fingerprint = {"params": {k: v for k, v in params.items() if k not in NOT_BINDING},
                   "data": {str(spec[s]): sha256_file(spec[s]) for s in ("train", "val", "vocab")}}
    done, note = prepare_checkpoint(checkpoint, fingerprint)
    if note:
        print(note, file=sys.stderr)

    # DVCLive logs beside the checkpoint (so a resumed run keeps the earlier epochs), and the log
    # replaces metrics/train/<branch> only once training has finished: a killed run leaves
    # nothing there that looks like a result.
    batch = params["batch_size"]
    live = Live(str(checkpoint / "live"), resume=bool(done), dvcyaml=False, save_dvc_exp=False)
    if done:
        keep_logged_epochs(checkpoint / "live", done)
        live.step = done  # the next epoch's row; DVCLive's own guess is off by one after epoch 1
    started = time.monotonic()
    history = model.fit(
        split_dataset(train, vocab, batch, shuffle_seed=params["seed"] + done),
        validation_data=split_dataset(val, vocab, batch),
        epochs=params["epochs"], verbose=2, shuffle=False,  # the dataset shuffles itself
        # DVCLive logs an epoch before BackupAndRestore records it: a run killed in between has
        # logged one epoch too many, which keep_logged_epochs drops, never one too few.
        callbacks=[DVCLiveCallback(live=live),
                   keras.callbacks.BackupAndRestore(str(checkpoint / "backup"), double_checkpoint=True,
                                                    delete_checkpoint=False),
                   keras.callbacks.EarlyStopping(patience=params["patience"] or params["epochs"],
                                                 restore_best_weights=True)])
    seconds = time.monotonic() - started
    val_losses = history.history["val_loss"]
    best = min(val_losses)
    if not math.isfinite(best):
        raise UserError(f"training diverged (validation loss {best}); lower {spec['train_stage']}.learning_rate")
    with atomic_path(spec["model"], suffix=".keras") as tmp:
        model.save(tmp)  # the best epoch's weights: EarlyStopping restored them
    summary = {"best_val_loss": best, f"best_val_bits_per_{unit}": best / math.log(2),
               "best_val_perplexity": math.exp(best), "best_epoch": done + val_losses.index(best) + 1,
               "epochs_run": done + len(val_losses), "resumed_after_epoch": done, "train_seconds": round(seconds, 1),
               "tokens_per_second": round(len(val_losses) * targets_per_epoch(train, vocab) / seconds),
               "device": device, "replicas": strategy.num_replicas_in_sync, "lstm_kernel": kernel}
    for name, value in summary.items():
        live.log_metric(name, value, plot=False)
    live.make_summary()
    with atomic_dir(spec["live"]) as out:
        shutil.copytree(checkpoint / "live", out, dirs_exist_ok=True)
    shutil.rmtree(checkpoint)
    print(f"best validation loss {best:.4f} nats/{unit} ({best / math.log(2):.3f} bits, perplexity "
          f"{math.exp(best):.1f}) at epoch {summary['best_epoch']} of {summary['epochs_run']}, {seconds:.0f}s on {device}",
          file=sys.stderr)


if __name__ == "__main__":
    run(lambda: main(*sys.argv[1:2]))
