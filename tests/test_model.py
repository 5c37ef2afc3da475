"""train-lstm and sample: the model, the carried-state sampler, and the two stages on tiny params."""

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_textgen.errors import UserError
from lstm_textgen.files import MappedVector, write_npy
from lstm_textgen.sampling import Stepper, sample_next
from conftest import ROOT, TINY, headlines_csv, run_data_stages, write_params

import keras  # noqa: E402
from lstm_textgen import model as lstm  # noqa: E402
from lstm_textgen import training


def test_the_lstm_layers_are_cudnn_eligible():
    model = lstm.build_model(vocab_size=30, embedding_dim=8, units=16, layers=2, dropout=0.2)
    assert len(lstm.lstm_layers(model)) == 2
    assert lstm.cudnn_problems(model) == []
    blocked = keras.Sequential([keras.Input((None, 4)), keras.layers.LSTM(8, recurrent_dropout=0.1, name="slow")])
    assert lstm.cudnn_problems(blocked) == ["slow: needs recurrent_dropout is 0"]


def test_the_stepper_matches_the_whole_sequence_model():
    keras.utils.set_random_seed(0)
    model = lstm.build_model(vocab_size=20, embedding_dim=6, units=12, layers=2, dropout=0.5)
    rng = np.random.default_rng(1)  # every weight random, biases included, so none goes unchecked
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    tokens = np.random.default_rng(0).integers(0, 20, size=(3, 15))
    full = keras.ops.convert_to_numpy(model(tokens, training=False))
    stepper = Stepper(lstm.sampler_weights(model))
    state = stepper.initial_state(3)
    for t in range(15):
        logits, state = stepper.step(tokens[:, t], state)
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-4, atol=1e-5)


def test_window_dataset_gathers_shifted_targets_from_the_text_file(tmp_path):
    write_npy(tmp_path / "train.npy", np.arange(50, dtype=np.uint8))
    split = {"tokens": MappedVector.open(tmp_path / "train.npy"), "windows": 3, "step": 7, "seq_length": 5}
    (inputs, targets), = list(lstm.window_dataset(split, batch_size=3).as_numpy_iterator())
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [7, 8, 9, 10, 11], [14, 15, 16, 17, 18]]
    assert np.array_equal(targets, inputs + 1) and inputs.dtype == np.int32


def test_window_dataset_shuffles_each_epoch_by_seed_and_epoch_alone(tmp_path):
    write_npy(tmp_path / "train.npy", np.arange(200, dtype=np.uint8))
    split = {"tokens": MappedVector.open(tmp_path / "train.npy"), "windows": 19, "step": 10, "seq_length": 9}

    def epochs(ds, count):  # each epoch's window starts, in the order drawn: 5 batches of 4 (the last of 3)
        batches = list(itertools.islice(ds.as_numpy_iterator(), 5 * count))
        return [np.concatenate([x[:, 0] for x, _ in batches[e * 5:(e + 1) * 5]]) for e in range(count)]

    from_zero = epochs(lstm.window_dataset(split, 4, shuffle_seed=5), 3)
    assert all(sorted(e) == list(range(0, 190, 10)) for e in from_zero)  # each window once an epoch
    assert not np.array_equal(from_zero[0], from_zero[1])
    resumed = epochs(lstm.window_dataset(split, 4, shuffle_seed=5, first_epoch=1), 2)
    assert np.array_equal(resumed, from_zero[1:])  # a resumed run sees the epochs an uninterrupted one does
    assert not np.array_equal(epochs(lstm.window_dataset(split, 4, shuffle_seed=6), 1)[0], from_zero[0])


def peak_resident_mib(reset: bool = False) -> float:
    """The process' peak resident memory since the last reset (VmHWM), which catches what comes
    and goes between two readings; `reset` starts a new peak from what is resident now."""
    if reset:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError as err:
            pytest.skip(f"this kernel does not let a process reset its peak memory ({err})")
    status = Path("/proc/self/status").read_text()
    peak, now = (int(status.split(f"{key}:")[1].split()[0]) / 1024 for key in ("VmHWM", "VmRSS"))
    if reset and peak - now > 5:
        pytest.skip(f"this kernel did not reset the peak memory ({peak:.0f} MiB against {now:.0f} MiB resident)")
    return peak


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads resident memory from Linux's /proc")
def test_training_batches_come_from_the_file_without_the_text_becoming_resident(tmp_path):
    """96 MiB of token ids, and batches drawn from all over them: nothing a batch reads stays in
    the process, nor passes through it in bulk on the way (the text loaded whole, or a map kept
    open, would add the 96 MiB; a map of the file per batch held some 70 MiB while it lived)."""
    size = 96 * 2 ** 20
    text = np.random.default_rng(0).integers(0, 50, size, dtype=np.uint8)
    write_npy(tmp_path / "train.npy", text)
    split = {"tokens": MappedVector.open(tmp_path / "train.npy"), "windows": (size - 101) // 50, "step": 50,
             "seq_length": 100}
    del text
    warm_up = {**split, "tokens": split["tokens"][:2 ** 20], "windows": (2 ** 20 - 101) // 50}
    for _ in lstm.window_dataset(warm_up, 64).as_numpy_iterator():
        pass  # tf.data's threads and buffers are made on a megabyte of the text, read to its end
    before = peak_resident_mib(reset=True)
    batches = lstm.window_dataset(split, 64, shuffle_seed=1).as_numpy_iterator()
    for _ in range(3000):  # 192,000 windows: nearly every page of the file read
        inputs, targets = next(batches)
    assert inputs.shape == (64, 100) and np.array_equal(inputs[:, 1:], targets[:, :-1])
    assert peak_resident_mib() - before < 30


def test_rows_dataset_weighs_padding_zero():
    rows = np.array([[5, 6, 2, 0, 0], [7, 2, 0, 0, 0]], dtype=np.uint16)
    (inputs, targets, weights), = list(lstm.rows_dataset(rows, pad_id=0, batch_size=2).as_numpy_iterator())
    assert inputs.tolist() == [[5, 6, 2, 0], [7, 2, 0, 0]]
    assert targets.tolist() == [[6, 2, 0, 0], [2, 0, 0, 0]]
    assert weights.tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]


def test_sampling_respects_temperature_and_top_k():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 2000))
    rng = np.random.default_rng(0)
    assert set(sample_next(logits, 0.01, None, rng)) == {0}
    assert set(sample_next(logits, 1.0, 2, rng)) == {0, 1}
    draws = sample_next(logits, 1.0, None, rng)
    assert abs(np.mean(draws == 3) - 0.05) < 0.02  # temperature 1 keeps the model's own odds
    hot = sample_next(logits, 3.0, None, rng)
    assert np.mean(hot == 3) > 0.15  # a high temperature flattens them
    assert np.array_equal(sample_next(logits[:5], 1.0, None, np.random.default_rng(1)),
                          sample_next(logits[:5], 1.0, None, np.random.default_rng(1)))


# --- the stages, on a tiny model ---------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The data stages and train-lstm run on a fixture book, in a folder of their own."""
    import train_lstm
    tmp = tmp_path_factory.mktemp("trained")
    run_data_stages(tmp)
    old = os.getcwd()
    os.chdir(tmp)
    try:
        train_lstm.main()
    finally:
        os.chdir(old)
    return tmp


def test_training_writes_the_model_and_its_scores(trained):
    summary = json.loads((trained / "metrics/train/char/run.json").read_text())
    loss = summary["best_val_loss"]
    assert 0 < loss < math.log(json.loads((trained / "metrics/vocab.json").read_text())["vocab_size"])
    assert summary["best_val_bits_per_char"] == pytest.approx(loss / math.log(2))
    assert summary["best_val_perplexity"] == pytest.approx(math.exp(loss))
    assert summary["epochs_run"] == 1 and summary["best_epoch"] == 1
    assert summary["device"] == "CPU" and summary["lstm_kernel"] == "cpu_loop" and summary["precision"] == "float32"
    assert json.loads((trained / "metrics/train/char/metrics.json").read_text()) == {"char": {
        "val_loss": round(loss, 4), "val_bits_per_char": round(summary["best_val_bits_per_char"], 4),
        "val_perplexity": round(summary["best_val_perplexity"], 4)}}  # the headline, what DVC shows
    assert (trained / "metrics/train/char/plots/metrics/eval/loss.tsv").read_text().startswith("step\tloss\n0\t")
    model = lstm.load_model(trained / "data/models/char.keras")
    assert [layer.units for layer in lstm.lstm_layers(model)] == [16]
    assert not list((trained / "data/models").glob(".*"))  # no temporary left beside it


def test_a_resumed_run_drops_epochs_logged_after_the_last_checkpoint(tmp_path):
    """Killed between DVCLive's row for epoch 3 and the checkpoint of epoch 3: that row goes."""
    log = tmp_path / "plots/metrics/eval/loss.tsv"
    log.parent.mkdir(parents=True)
    log.write_text("step\tloss\n0\t3.1\n1\t2.9\n2\t2.8\n")
    training.keep_logged_epochs(tmp_path, done=2)
    assert log.read_text() == "step\tloss\n0\t3.1\n1\t2.9\n"


# train-lstm in a process whose CPU shows as two logical devices, as two GPUs would be
TWO_DEVICES = """
import runpy, sys
import tensorflow as tf
cpu, = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.argv = [sys.argv[1], "char"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_mirrored_training_on_two_devices_matches_one_device(trained, tmp_path):
    """distribute: mirrored runs MirroredStrategy over every device (two logical CPUs here):
    each replica takes half of every batch, and the result matches one device's."""
    scores = {}
    for name, launch in (("one_device", [str(ROOT / "stages/train_lstm.py"), "char"]),
                         ("mirrored", ["-c", TWO_DEVICES, str(ROOT / "stages/train_lstm.py")])):
        work = tmp_path / name
        shutil.copytree(trained, work, ignore=shutil.ignore_patterns("models", "train"))
        write_params(work, **{**TINY, "train_lstm": {**TINY["train_lstm"], "epochs": 2, "dropout": 0.0, "distribute": name}})
        proc = subprocess.run([sys.executable, *launch], cwd=work, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        scores[name] = json.loads((work / "metrics/train/char/run.json").read_text())
    assert (scores["one_device"]["device"], scores["one_device"]["replicas"]) == ("CPU", 1)
    assert (scores["mirrored"]["device"], scores["mirrored"]["replicas"]) == ("2 × CPU", 2)
    assert scores["mirrored"]["best_val_loss"] == pytest.approx(scores["one_device"]["best_val_loss"], rel=0.02)


def run_sample(folder, monkeypatch, **params):
    import sample
    monkeypatch.chdir(folder)
    write_params(folder, **{**TINY, "sample": {**TINY["sample"], **params}})
    sample.main()
    out = folder / "metrics/sample/char"
    return {name: (out / name).read_text() for name in ("samples.txt", "provenance.json", "run.json", "metrics.json")}


def test_sampling_is_reproducible_and_recorded(trained, monkeypatch):
    first = run_sample(trained, monkeypatch)
    second = run_sample(trained, monkeypatch)
    assert first["samples.txt"] == second["samples.txt"] and first["provenance.json"] == second["provenance.json"]
    text = first["samples.txt"]
    assert text.startswith("=== sample 1 of 2 ===\nseed (validation text, offset ")
    assert "=== sample 2 of 2 ===" in text
    generated = text.split("generated:\n")[1].split("\n\n=== sample 2")[0]
    assert len(generated) == 40
    provenance = json.loads(first["provenance.json"])
    assert provenance["params"]["sample"]["length"] == 40
    assert len(provenance["model"]["sha256"]) == 64 and len(provenance["vocab"]["sha256"]) == 64
    metrics = json.loads(first["run.json"])
    assert metrics["tokens_per_second"] > 0
    assert 0 <= metrics["known_word_share"] <= 1 and 0 <= metrics["repetition_rate"] <= 1
    assert json.loads(first["metrics.json"]) == {"char": {"known_word_share": round(metrics["known_word_share"], 4),
                                                          "distinct_3": round(metrics["distinct_3"], 4)}}
    other = run_sample(trained, monkeypatch, seed=8)
    assert other["samples.txt"] != first["samples.txt"]


def test_a_seed_text_is_cleaned_like_the_corpus_and_what_remains_unknown_is_named(trained, monkeypatch):
    with pytest.raises(UserError, match=r"sample.seed_text has characters the model never saw in its training text "
                                        r"\(after it was lowercased, as the training text was\): '\$', '\u00a7'"):
        run_sample(trained, monkeypatch, seed_text="Alice $ and \u00a7")
    given = run_sample(trained, monkeypatch, seed_text="Alice Said")  # lowercased, as the corpus was
    assert "seed (params.yaml):\nalice said\n" in given["samples.txt"]


def test_a_vocabulary_that_no_longer_matches_the_model_is_refused(trained, tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(trained, work)
    vocab_path = work / "data/vocab/chars.json"
    vocab = json.loads(vocab_path.read_text())
    vocab_path.write_text(json.dumps({**vocab, "tokens": vocab["tokens"] + ["\u00e9"]}))
    with pytest.raises(UserError, match=rf"data/models/char.npz predicts {len(vocab['tokens'])} tokens but "
                                        rf"data/vocab/chars.json has {len(vocab['tokens']) + 1}.*dvc repro train-lstm"):
        run_sample(work, monkeypatch)


@pytest.mark.parametrize("params, message", [
    ({"temperature": 0}, "sample.temperature = 0 must be a number > 0"),
    ({"length": -5}, "sample.length = -5 must be a whole number > 0"),
])
def test_bad_sample_params_are_refused(trained, monkeypatch, params, message):
    with pytest.raises(UserError, match=message):
        run_sample(trained, monkeypatch, **params)


@pytest.fixture(scope="module")
def trained_headlines(tmp_path_factory):
    import tokenize_headlines
    import train_lstm
    tmp = tmp_path_factory.mktemp("headlines")
    (tmp / "headlines.csv").write_bytes(headlines_csv())
    write_params(tmp, **{**TINY, "tokenize_headlines": {**TINY["tokenize_headlines"], "source": "headlines.csv"}})
    old = os.getcwd()
    os.chdir(tmp)
    try:
        tokenize_headlines.main()
        train_lstm.main("headlines")
    finally:
        os.chdir(old)
    return tmp


def run_headlines(folder, monkeypatch, **params):
    import sample
    monkeypatch.chdir(folder)
    write_params(folder, **{**TINY, "tokenize_headlines": {**TINY["tokenize_headlines"], "source": "headlines.csv"},
                            "sample_headlines": {**TINY["sample_headlines"], **params}})
    sample.main("headlines")
    out = folder / "metrics/sample/headlines"
    return (out / "samples.txt").read_text(), json.loads((out / "run.json").read_text())


def test_headlines_train_with_per_word_scores(trained_headlines):
    summary = json.loads((trained_headlines / "metrics/train/headlines/run.json").read_text())
    assert summary["best_val_bits_per_word"] == pytest.approx(summary["best_val_loss"] / math.log(2))
    assert 1 < summary["best_val_perplexity"] < 100  # a vocabulary of 100 words at most
    headline = json.loads((trained_headlines / "metrics/train/headlines/metrics.json").read_text())
    assert headline == {"headlines": {"val_loss": round(summary["best_val_loss"], 4),
                                      "val_bits_per_word": round(summary["best_val_bits_per_word"], 4),
                                      "val_perplexity": round(summary["best_val_perplexity"], 4)}}


def test_headlines_are_one_title_cased_line_per_seed(trained_headlines, monkeypatch):
    text, metrics = run_headlines(trained_headlines, monkeypatch, seeds=["Alice", "the QUEEN", "Cat, tea!"])
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Alice") and lines[1].startswith("The Queen") and lines[2].startswith("Cat Tea")
    assert all(len(line.split()) <= n + 5 for line, n in zip(lines, (1, 2, 2)))  # max_words: 5
    assert "<Unk>" not in text and "<unk>" not in text and metrics["unknown_share"] == 0  # never drawn
    assert set(metrics) == {"tokens_per_second", "copied_share", "distinct_1", "distinct_2", "unknown_share"}
    assert 0 <= metrics["copied_share"] <= 1 and 0 <= metrics["unknown_share"] <= 1
    headline = json.loads((trained_headlines / "metrics/sample/headlines/metrics.json").read_text())
    assert headline == {"headlines": {"distinct_2": round(metrics["distinct_2"], 4),
                                      "copied_share": round(metrics["copied_share"], 4)}}


def test_a_seed_with_unknown_words_is_refused_naming_them(trained_headlines, monkeypatch):
    with pytest.raises(UserError, match=r"sample-headlines.seeds: 'Zebra queen, Xylophone!' has words the model never "
                                        r"saw in training \(after it was .*lowercased.*\): zebra, xylophone"):
        run_headlines(trained_headlines, monkeypatch, seeds=["Zebra queen, Xylophone!"])
