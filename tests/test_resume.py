"""train-lstm resumes exactly: a run killed at an epoch boundary ends with the weights, scores and
epoch count of the uninterrupted run. Real training on a tiny model that overfits within a few
epochs, so that the best epoch comes before the kill."""

import hashlib
import json
import shutil
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from conftest import ROOT, TINY, book_body, run_data_stages, write_params
from test_base_model import BASE_MODEL, BASE_VOCAB, write_base_vocab

import keras  # noqa: E402
from lstm_textgen import model as lstm  # noqa: E402
from lstm_textgen.training import Best, early_stopping_state  # noqa: E402
from lstm_textgen import training


# --- the rebuilt early-stopping state ----------------------------------------------------------

@pytest.mark.parametrize("losses", [
    [3.0, 2.0, 2.4, 2.5, 1.9, 2.2, 2.2, 2.3],
    [2.0, 2.0, 2.0, 2.0],                      # a tie is no improvement
    [float("nan"), 2.0, 1.0],                  # nothing improves on NaN, as in Keras
    list(np.random.default_rng(0).normal(2, 0.3, 30)),
])
@pytest.mark.parametrize("patience", [1, 2, 3])
def test_the_rebuilt_state_is_what_keras_early_stopping_knew(losses, patience):
    """early_stopping_state(first k losses) matches keras.callbacks.EarlyStopping after k epochs."""
    stopper = keras.callbacks.EarlyStopping(patience=patience)
    stopper.set_model(types.SimpleNamespace(stop_training=False))
    stopper.on_train_begin()
    for epoch, loss in enumerate(losses):
        stopper.on_epoch_end(epoch, {"val_loss": float(loss)})
        state = early_stopping_state(losses[:epoch + 1], patience)
        np.testing.assert_equal((state.loss, state.epoch, state.wait), (stopper.best, stopper.best_epoch, stopper.wait))
        assert state.stop == stopper.model.stop_training
        if state.stop:
            break


def test_patience_counts_from_the_best_epoch_before_the_kill():
    """Best at epoch 2, killed after epoch 3: one worse epoch more ends training with patience 2.
    Counting from zero after the kill (the old behaviour) would train at least two more."""
    losses = [3.0, 2.0, 2.4]
    assert early_stopping_state(losses, patience=2) == Best(2.0, 1, 1, False)
    assert early_stopping_state(losses + [2.5], patience=2) == Best(2.0, 1, 2, True)
    assert early_stopping_state(losses + [1.5], patience=2) == Best(1.5, 3, 0, False)
    assert early_stopping_state(losses + [2.5] * 5, patience=0).stop is False  # 0: never stop early
    assert early_stopping_state([], patience=2) == Best(None, 0, 0, False)


def write_log(live_dir, losses):
    log = live_dir / "plots/metrics/eval/loss.tsv"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("step\tloss\n" + "".join(f"{i}\t{loss!r}\n" for i, loss in enumerate(losses)))


def test_a_checkpoint_without_its_best_weights_or_log_cannot_resume(tmp_path):
    weights = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)]
    write_log(tmp_path / "live", [3.0, 2.0, 2.4])
    assert training.logged_val_losses(tmp_path / "live") == [3.0, 2.0, 2.4]
    assert training.missing_for_resume(tmp_path, done=3) == "the weights of its best epoch (2)"
    training.save_best_weights(tmp_path, 1, weights)
    assert training.missing_for_resume(tmp_path, done=3) is None
    assert all(np.array_equal(a, b) for a, b in zip(training.saved_best_weights(tmp_path, 1), weights))
    assert training.saved_best_weights(tmp_path, 0) is None
    assert training.missing_for_resume(tmp_path, done=4) == "a logged validation loss for each of its 4 epochs"
    write_log(tmp_path / "live", [3.0, 2.0])
    assert training.missing_for_resume(tmp_path, done=2) is None  # the best is the last: the backup holds it
    (tmp_path / "live/plots/metrics/eval/loss.tsv").write_text("step\tloss\n0\t3.0\n0\t2.0\n")
    assert training.missing_for_resume(tmp_path, done=2) == "a log of one row per epoch"


def test_such_a_checkpoint_starts_fresh_and_says_why(tmp_path):
    fingerprint = {"params": {"units": 8}, "data": {}}
    folder = tmp_path / "char"
    (folder / "backup").mkdir(parents=True)
    (folder / "fingerprint.json").write_text(json.dumps(fingerprint))
    (folder / "backup/training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    write_log(folder / "live", [3.0, 2.0, 2.4, 2.6])  # the 4th row: logged, then killed before its checkpoint
    assert training.prepare_checkpoint(folder, fingerprint) == (
        0, f"starting fresh: the checkpoint in {folder} lacks the weights of its best epoch (2)")
    assert sorted(p.name for p in folder.iterdir()) == ["fingerprint.json"]


def test_each_epoch_order_depends_on_the_seed_and_the_epoch_alone():
    items = np.arange(10)
    epochs = lambda ds, n: np.concatenate(list(ds.take(n * 3).as_numpy_iterator())).reshape(n, 10)  # noqa: E731
    from_zero = epochs(lstm.epoch_batches(items, batch_size=4, shuffle_seed=5), 4)  # 3 batches an epoch
    assert all(sorted(order) == list(range(10)) for order in from_zero)
    assert len({tuple(order) for order in from_zero}) == 4
    assert np.array_equal(epochs(lstm.epoch_batches(items, 4, shuffle_seed=5, first_epoch=2), 2), from_zero[2:])
    assert not np.array_equal(epochs(lstm.epoch_batches(items, 4, shuffle_seed=6), 4), from_zero)


# --- killed and resumed, on real training ------------------------------------------------------

# Few training windows (a 600-word book: 276), a high learning rate and a small batch: validation
# loss bottoms out after a few epochs and patience 2 ends training two epochs later, in a few
# seconds of training. Dropout > 0, so the masks after the resume must match too; and the whole
# recipe is on, so the resume must carry the weights' moving average, the schedule's position
# (warmup, decay, cooldown: each epoch is about 5,500 tokens) and the precision.
OVERFITS = {"units": 64, "embedding_dim": 16, "learning_rate": 0.04, "batch_size": 16, "dropout": 0.2,
            "patience": 2, "epochs": 10, "ema": 0.9, "clipnorm": 1.0, "unigram_bias": True,
            "warmup_tokens": 2000, "decay_after_tokens": 10_000, "half_life_tokens": 20_000,
            "max_tokens": 60_000, "cooldown": 0.2, "precision": "mixed_bfloat16"}


def train_in(folder, **params):
    """Run train-lstm char as DVC would, in its own process; return the process."""
    write_params(folder, **{**TINY, "train_lstm": {**TINY["train_lstm"], **OVERFITS, **params}})
    return subprocess.Popen([sys.executable, str(ROOT / "stages/train_lstm.py"), "char"], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_after_the_best_epoch(folder, proc):
    """SIGKILL `proc` once its checkpoint holds an epoch after its best (from its own log, which
    before the kill is the uninterrupted run's); return the epochs the checkpoint holds."""
    checkpoint = folder / "data/checkpoints/char"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        try:
            done = json.loads((checkpoint / "backup/training_metadata.json").read_text())["epoch"]
            # DVCLive logs an epoch before the checkpoint records it: the first `done` rows are whole.
            rows = (checkpoint / "live/plots/metrics/eval/loss.tsv").read_text().splitlines()[1:done + 1]
            losses = [float(row.split("\t")[1]) for row in rows]
        except (OSError, ValueError, KeyError):  # not written yet, or caught mid-write
            done, losses = 0, []
        if done and early_stopping_state(losses, 0).epoch < done - 1:
            proc.kill()
            proc.wait()
            return json.loads((checkpoint / "backup/training_metadata.json").read_text())["epoch"]
        time.sleep(0.005)


def whole_and_killed(data, whole, killed, **params):
    """Two runs side by side on copies of `data`'s data/: one uninterrupted, in `whole`, and one
    killed after its best epoch, in `killed` (left as the kill left it); the epochs it holds."""
    for folder in (whole, killed):
        shutil.copytree(data / "data", folder / "data")
    procs = [train_in(folder, **params) for folder in (whole, killed)]
    done = kill_after_the_best_epoch(killed, procs[1])
    err = procs[0].communicate()[1]
    assert procs[0].returncode == 0, err
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Training data from a short book; an uninterrupted run (`whole`) and, beside it, a run
    killed after its best epoch (`killed`, left as the kill left it)."""
    data = tmp_path_factory.mktemp("data")
    run_data_stages(data, n_words=600)
    whole, killed = (tmp_path_factory.mktemp(name) for name in ("whole", "killed"))
    return whole, killed, whole_and_killed(data, whole, killed)


def outcome(folder):
    """The scores, the saved model's weights and the per-epoch log of a finished run."""
    scores = json.loads((folder / "metrics/train/char/run.json").read_text())
    with np.load(folder / "data/models/char.npz") as f:
        weights = {name: f[name] for name in f.files}
    return scores, weights, (folder / "metrics/train/char/plots/metrics/eval/loss.tsv").read_text()


def assert_same_best(ours, theirs):
    """Same best scores and the same saved weights. Identical, not close: on CPU TensorFlow gives
    the same floats for the same ops on the same inputs (two uninterrupted runs agree to the
    bit), and a resumed run feeds it the same weights, optimizer state, batches and dropout masks."""
    (scores, weights, _), (their_scores, their_weights, _) = ours, theirs
    for key in ("best_val_loss", "best_val_bits_per_char", "best_val_perplexity", "best_epoch"):
        assert scores[key] == their_scores[key], key
    assert weights.keys() == their_weights.keys()
    for name in weights:
        assert np.array_equal(weights[name], their_weights[name]), name


def resume(killed, work, **change):
    shutil.copytree(killed, work)
    proc = train_in(work, **change)
    err = proc.communicate()[1]
    assert proc.returncode == 0, err
    return err


def test_a_run_killed_after_its_best_epoch_ends_as_the_uninterrupted_run(runs, tmp_path):
    whole, killed, done = runs
    expected = outcome(whole)
    # The setting does what it is for: training stopped early, and the best epoch is before the kill.
    assert expected[0]["best_epoch"] + OVERFITS["patience"] == expected[0]["epochs_run"] < OVERFITS["epochs"]
    assert expected[0]["best_epoch"] < done
    # The kill left no model and no scores: only a finished run writes them.
    assert not (killed / "data/models/char.keras").exists() and not (killed / "metrics/train/char").exists()
    assert f"resuming the interrupted run after epoch {done}" in resume(killed, tmp_path / "work")
    got = outcome(tmp_path / "work")
    assert_same_best(got, expected)
    assert (got[0]["epochs_run"], got[0]["resumed_after_epoch"]) == (expected[0]["epochs_run"], done)
    assert got[2] == expected[2]  # every epoch's validation loss, to the last digit
    assert not (tmp_path / "work/data/checkpoints/char").exists()


@pytest.mark.parametrize("change, reason", [
    ({"epochs": 1}, "epochs: 1 reached"),     # epochs lowered below those the checkpoint holds
    ({"patience": 1}, "patience 1 ran out"),  # as a run killed between the end of fit and the clean-up
])
def test_a_checkpoint_of_a_finished_run_saves_its_best_model(runs, tmp_path, change, reason):
    """No epoch is trained, nothing fails: the model saved is the best of the checkpoint's
    epochs, which hold the uninterrupted run's best."""
    whole, killed, done = runs
    err = resume(killed, tmp_path / "work", **change)
    assert f"the interrupted run had finished ({reason})" in err and "Traceback" not in err
    got, expected = outcome(tmp_path / "work"), outcome(whole)
    assert_same_best(got, expected)
    assert (got[0]["epochs_run"], got[0]["resumed_after_epoch"], got[0]["tokens_per_second"]) == (done, done, 0)
    assert got[2] == "".join(expected[2].splitlines(keepends=True)[:done + 1])  # the header and `done` epochs
    assert not (tmp_path / "work/data/checkpoints/char").exists()


def starts_fresh(killed, work, differing, **change):
    """Train a copy of `killed`, in `work`, for one epoch with `change`: it must start fresh,
    saying the checkpoint was made with a different `differing`, and clear the checkpoint.
    (`epochs` is no part of a checkpoint's fingerprint, so one epoch binds nothing.)"""
    err = resume(killed, work, epochs=1, **change)
    assert f"starting fresh: the checkpoint in data/checkpoints/char was made with a different {differing}" in err
    scores = json.loads((work / "metrics/train/char/run.json").read_text())
    assert (scores["resumed_after_epoch"], scores["epochs_run"]) == (0, 1)
    assert not (work / "data/checkpoints/char").exists()


def test_a_checkpoint_made_with_other_params_starts_fresh_saying_which(runs, tmp_path):
    starts_fresh(runs[1], tmp_path / "work", "units", units=48)


def test_windows_cut_again_with_another_step_make_the_checkpoint_another_runs(runs, tmp_path):
    """Another window.step leaves train.npy and val.npy byte for byte as they were; windows.json
    says where the windows start now, so the checkpoint made on the old windows is not resumed."""
    work = tmp_path / "work"
    shutil.copytree(runs[1], work)
    ids = {name: (work / "data/windows" / name).read_bytes() for name in ("train.npy", "val.npy")}
    write_params(work, **{**TINY, "window": {**TINY["window"], "step": TINY["window"]["step"] + 1}})
    subprocess.run([sys.executable, str(ROOT / "stages/window.py")], cwd=work, check=True, capture_output=True)
    assert {name: (work / "data/windows" / name).read_bytes() for name in ids} == ids
    proc = train_in(work, epochs=1)
    err = proc.communicate()[1]
    assert proc.returncode == 0, err
    assert ("starting fresh: the checkpoint in data/checkpoints/char was made with a different "
            "data/windows/windows.json") in err
    scores = json.loads((work / "metrics/train/char/run.json").read_text())
    assert (scores["resumed_after_epoch"], scores["epochs_run"]) == (0, 1)
    assert not (work / "data/checkpoints/char").exists()


# --- fine-tuning from a base model, killed and resumed -----------------------------------------

def test_a_killed_fine_tuning_resumes_from_its_checkpoint_and_a_new_base_starts_afresh(tmp_path):
    """With init_from, training sets the base model's weights first and a resumed run loads its
    checkpoint over them: it ends as the uninterrupted fine-tuning did, to the bit (were the base
    loaded after the checkpoint, the resumed epochs would start from the base again). A base
    model replaced since the kill makes the checkpoint another run's: training starts afresh."""
    data = tmp_path / "data_stages"
    data.mkdir()
    tokens = write_base_vocab(data, book_body(600).lower())["tokens"]
    run_data_stages(data, n_words=600, encode_vocab={"base_vocab": BASE_VOCAB})

    def save_base(folder, seed):
        keras.utils.set_random_seed(seed)
        lstm.build_model(len(tokens), OVERFITS["embedding_dim"], OVERFITS["units"], TINY["train_lstm"]["layers"],
                         OVERFITS["dropout"]).save(folder / BASE_MODEL)

    save_base(data, seed=7)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = whole_and_killed(data, whole, killed, init_from=BASE_MODEL)
    expected = outcome(whole)
    assert expected[0]["best_epoch"] < done < expected[0]["epochs_run"]

    work = tmp_path / "work"
    assert f"resuming the interrupted run after epoch {done}" in resume(killed, work, init_from=BASE_MODEL)
    got = outcome(work)
    assert_same_best(got, expected)
    assert got[2] == expected[2] and got[0]["resumed_after_epoch"] == done

    save_base(killed, seed=8)  # the kill's checkpoint, now beside another base model
    starts_fresh(killed, tmp_path / "fresh", BASE_MODEL, init_from=BASE_MODEL)
    record = json.loads((tmp_path / "fresh/metrics/train/char/base_model.json").read_text())
    assert record["sha256"] == hashlib.sha256((tmp_path / "fresh" / BASE_MODEL).read_bytes()).hexdigest()
