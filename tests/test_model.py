"""train-lstm and sample: the model, the carried-state sampler, and the two stages on tiny params."""

import json
import math
import os

import numpy as np
import pytest

from common import UserError, sample_next
from conftest import TINY, book_body, gutenberg_file, write_params

lstm = pytest.importorskip("lstm")  # imports TensorFlow
import keras  # noqa: E402


def test_the_lstm_layers_are_cudnn_eligible():
    model = lstm.build_model(vocab_size=30, embedding_dim=8, units=16, layers=2, dropout=0.2)
    assert len(lstm.lstm_layers(model)) == 2
    assert lstm.cudnn_problems(model) == []
    blocked = keras.Sequential([keras.Input((None, 4)), keras.layers.LSTM(8, recurrent_dropout=0.1, name="slow")])
    assert lstm.cudnn_problems(blocked) == ["slow: needs recurrent_dropout is 0"]


def test_the_stepper_matches_the_whole_sequence_model():
    keras.utils.set_random_seed(0)
    model = lstm.build_model(vocab_size=20, embedding_dim=6, units=12, layers=2, dropout=0.5)
    tokens = np.random.default_rng(0).integers(0, 20, size=(3, 15))
    full = keras.ops.convert_to_numpy(model(tokens, training=False))
    stepper = lstm.Stepper(model)
    state = stepper.initial_state(3)
    for t in range(15):
        logits, state = stepper.step(tokens[:, t], state)
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-4, atol=1e-5)


def test_window_dataset_gathers_shifted_targets():
    tokens = np.arange(50, dtype=np.uint8)
    starts = np.array([0, 7, 30])
    (inputs, targets), = list(lstm.window_dataset(tokens, starts, seq_length=5, batch_size=3).as_numpy_iterator())
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [7, 8, 9, 10, 11], [30, 31, 32, 33, 34]]
    assert np.array_equal(targets, inputs + 1)


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
    import download_gutenberg
    import encode_vocab
    import strip_boilerplate
    import train_lstm
    import window
    tmp = tmp_path_factory.mktemp("trained")
    (tmp / "mirror").mkdir()
    (tmp / "mirror/pg1.txt").write_bytes(gutenberg_file(book_body()))
    write_params(tmp, **TINY)
    old, os.environ["GUTENBERG_MIRROR"] = os.getcwd(), str(tmp / "mirror")
    os.chdir(tmp)
    try:
        for stage in (download_gutenberg, strip_boilerplate, encode_vocab, window):
            stage.main()
        train_lstm.main()
    finally:
        os.chdir(old)
        del os.environ["GUTENBERG_MIRROR"]
    return tmp


def test_training_writes_the_model_and_its_scores(trained):
    summary = json.loads((trained / "metrics/train/char/metrics.json").read_text())
    loss = summary["best_val_loss"]
    assert 0 < loss < math.log(json.loads((trained / "metrics/vocab.json").read_text())["vocab_size"])
    assert summary["best_val_bits_per_char"] == pytest.approx(loss / math.log(2))
    assert summary["best_val_perplexity"] == pytest.approx(math.exp(loss))
    assert summary["epochs_run"] == 1 and summary["best_epoch"] == 1
    assert summary["device"] == "CPU" and summary["lstm_kernel"] == "generic"
    assert (trained / "metrics/train/char/plots/metrics/eval/loss.tsv").read_text().startswith("step\tloss\n0\t")
    model = lstm.load_model(trained / "data/models/char.keras")
    assert [layer.units for layer in lstm.lstm_layers(model)] == [16]
    assert not list((trained / "data/models").glob(".*"))  # no temporary left beside it


def run_sample(folder, monkeypatch, **params):
    import sample
    monkeypatch.chdir(folder)
    write_params(folder, **{**TINY, "sample": {**TINY["sample"], **params}})
    sample.main()
    out = folder / "metrics/sample/char"
    return {name: (out / name).read_text() for name in ("samples.txt", "provenance.json", "metrics.json")}


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
    metrics = json.loads(first["metrics.json"])
    assert metrics["tokens_per_second"] > 0
    assert 0 <= metrics["known_word_share"] <= 1 and 0 <= metrics["repetition_rate"] <= 1
    other = run_sample(trained, monkeypatch, seed=8)
    assert other["samples.txt"] != first["samples.txt"]


def test_a_seed_text_outside_the_vocabulary_is_refused_by_name(trained, monkeypatch):
    with pytest.raises(UserError, match=r"sample.seed_text has characters outside the vocabulary: 'A', 'Z'"):
        run_sample(trained, monkeypatch, seed_text="Alice and Zed")
    given = run_sample(trained, monkeypatch, seed_text="alice said")
    assert "seed (params.yaml):\nalice said\n" in given["samples.txt"]


@pytest.mark.parametrize("params, message", [
    ({"temperature": 0}, "sample.temperature = 0 must be a number > 0"),
    ({"length": -5}, "sample.length = -5 must be a whole number > 0"),
])
def test_bad_sample_params_are_refused(trained, monkeypatch, params, message):
    with pytest.raises(UserError, match=message):
        run_sample(trained, monkeypatch, **params)
