"""The benchmarks' own parts (benchmarks/ is run by hand, not here): the tutorial's data layout
and loop, and the held-out windows both methods are scored on; quality.py's split of Tiny
Shakespeare, its scoring, its Transformer, the race's recipe and how it compares the two models."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from lstm_textgen.cpu_lstm import CpuLSTM
from lstm_textgen import model as lstm
from lstm_textgen import training
import quality
import run
import scale
from lstm_textgen.sampling import Stepper
import timed_training
import tutorial
from conftest import ROOT


def test_the_tutorial_copies_every_window_as_floats_with_one_hot_targets():
    ids = np.arange(10, dtype=np.uint8)
    x, y = tutorial.windows_as_floats(ids, vocab_size=10, seq_length=3)
    assert x.shape == (7, 3, 1) and x.dtype == np.float64
    assert x[2, :, 0].tolist() == [0.2, 0.3, 0.4]
    assert y.shape == (7, 10) and y[2].argmax() == 5 and y.sum() == 7


def test_the_tutorial_loop_predicts_from_the_window_as_our_stepper_does():
    """Its first character is the argmax after the whole seed, as with the carried state; then
    it slides a fixed-length window (forgetting the oldest character), which the stepper does not."""
    model = lstm.build_model(vocab_size=12, embedding_dim=4, units=8, layers=1, dropout=0.0)
    seed = [3, 1, 4, 1, 5]
    looped = tutorial.generate(model, seed, 3, scale=None)
    stepper = Stepper(lstm.sampler_weights(model))
    state = stepper.initial_state(1)
    for token in seed:
        logits, state = stepper.step(np.array([token]), state)
    assert looped[0] == int(logits[0].argmax())
    window = seed[1:] + looped[:1]  # the loop's second prediction reads only this window
    state = stepper.initial_state(1)
    for token in window:
        logits, state = stepper.step(np.array([token]), state)
    assert looped[1] == int(logits[0].argmax())


def test_held_out_windows_end_where_their_target_is():
    ids = np.arange(250)
    windows, targets = timed_training.held_out(ids, stride=10)
    assert windows.shape == (15, timed_training.CONTEXT)
    assert targets.tolist() == list(range(100, 250, 10))
    assert (windows[:, -1] + 1 == targets).all()
    log_probs = np.log(np.full((2, 4), 0.25))
    assert timed_training.mean_nll(log_probs, np.array([0, 3])) == np.log(4)


def test_a_corpus_takes_the_books_in_turn_while_they_fit():
    sizes = {"alice": 100, "big": 450, "small": 90}
    assert scale.corpus_books(100, sizes) == ["alice"]
    assert scale.corpus_books(1000, sizes) == ["alice", "big", "small", "alice", "small", "alice"]  # 930
    assert scale.corpus_books(50, sizes) == []


def test_repeated_training_runs_give_each_figure_as_its_median_and_range():
    runs = [{"tokens_per_second": 100, "peak_mib": 810.0}, {"tokens_per_second": 90, "peak_mib": 812.5},
            {"tokens_per_second": 120, "peak_mib": 806.0}]
    assert scale.median_run(runs) == {"tokens_per_second": 100, "tokens_per_second_range": [90, 120],
                                      "peak_mib": 810.0, "peak_mib_range": [806.0, 812.5]}
    assert scale.median_run(runs[:2])["tokens_per_second"] == 95
    assert isinstance(scale.median_run(runs[:2])["tokens_per_second"], int)  # printed as 95, not 95.0
    assert scale.median_run(runs[:1]) == runs[0]  # one run: no range


def test_the_scale_report_gives_the_training_speed_ratio_of_medians_with_their_ranges():
    data = {stage: {"seconds": 1.0, "cpu_seconds": 1.0, "peak_mib": 40.0} for stage in scale.DATA_STAGES}

    def size(multiple, speeds, peaks):
        training = scale.median_run([{"seconds": 40.0, "cpu_seconds": 60.0, "peak_mib": peak, "tokens_per_second": speed}
                                     for speed, peak in zip(speeds, peaks)])
        return {**data, "train-lstm": training, "sample": {"seconds": 1.0, "cpu_seconds": 1.0, "peak_mib": 41.0},
                "bytes": {"raw": multiple * 1000, "clean": multiple * 950}, "tokens": multiple * 900,
                "books": multiple, "multiple": multiple}

    result = {"machine": {"cpu": "a CPU", "cores": 2}, "download_pool": 4, "train_model": "1x8 LSTM",
              "train_tokens": 1000, "train_rounds": 3, "window": {"val_fraction": 0.002},
              "runs": {"1x": size(1, [100, 90, 120], [800.0, 801.0, 805.0]),
                       "1000x": size(1000, [80, 95, 110], [802.0, 808.0, 803.0])}}
    text = scale.report(result)
    assert "median of 3 runs a size (range)" in text
    assert "100 (90 to 120) tokens/s and peak 801.0 MiB (800.0 to 805.0) at 1x" in text
    assert "the largest size at 0.950x the smallest's speed" in text
    assert "train-lstm +2.0 MiB" in text


def test_a_measured_command_reports_its_own_peak_memory_not_ours(tmp_path):
    """Linux carries a process's peak memory into the processes it starts: measured() must not."""
    ours = bytearray(300 * 2**20)  # this process at 300 MiB and more
    ours[::4096] = b"\1" * len(ours[::4096])
    idle = run.measured([sys.executable, "-c", "pass"], tmp_path, {}, tmp_path / "idle.log")
    busy = run.measured([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'1' * len(b[::4096])"],
                        tmp_path, {}, tmp_path / "busy.log")
    del ours
    assert idle.peak_mib < 100 and 200 < busy.peak_mib < 300
    assert 0 < idle.cpu_seconds <= busy.cpu_seconds < busy.seconds + 1



# benchmarks/quality.py: Tiny Shakespeare, the LSTM against a small Transformer

SHAKESPEARE_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # its 65


def test_shakespeare_splits_at_90_percent_and_keeps_its_65_characters_sorted_case_and_all(tmp_path):
    text = (SHAKESPEARE_CHARS[::-1] * 16)[:1000]
    (tmp_path / "tiny.txt").write_text(text, encoding="utf-8")
    vocab, train, val = quality.shakespeare(tmp_path / "tiny.txt")
    assert vocab["tokens"] == sorted(SHAKESPEARE_CHARS) and vocab["unknown"] is None
    assert len(train) == 900 and len(val) == 100
    assert "".join(vocab["tokens"][i] for i in [*train, *val]) == text


def test_both_models_are_scored_on_the_same_held_out_characters_each_predicted_once():
    val = np.arange(1000)
    scored = quality.scored_text(val, [10, 4])  # lcm 20: 980 of the 999 predictable characters
    assert scored.tolist() == list(range(981))
    for length in (10, 4):
        inputs, targets = quality.blocks(scored, length)
        assert inputs.shape == targets.shape == (980 // length, length)
        assert targets.ravel().tolist() == list(range(1, 981))  # every character after the first, once, in order
        assert (inputs + 1 == targets).all()  # each predicted from the ones before it in its block
        assert inputs[1, 0] == length  # blocks do not overlap: the second starts where the first ends


def test_block_loss_is_the_mean_cross_entropy_in_nats_of_every_position():
    ids = np.arange(41) % 7
    uniform = lambda x: np.zeros((*x.shape, 7))  # noqa: E731
    assert quality.block_loss(uniform, ids, 10, batch=3) == pytest.approx(math.log(7))
    knows_the_next = lambda x: 50.0 * np.eye(7)[(x + 1) % 7]  # noqa: E731
    assert quality.block_loss(knows_the_next, ids, 10, batch=3) < 1e-15
    half_sure = lambda x: np.log(np.where(np.eye(7)[(x + 1) % 7] == 1, 0.5, 0.5 / 6))  # noqa: E731
    assert quality.block_loss(half_sure, ids, 8) == pytest.approx(math.log(2))


def test_the_transformer_reads_no_later_character():
    quality.keras.utils.set_random_seed(0)
    model = quality.transformer(vocab_size=11, context=8, layers=2, heads=2, width=16)
    ids = np.random.default_rng(0).integers(0, 11, size=(2, 8)).astype(np.int32)
    changed = ids.copy()
    changed[:, 5] = (changed[:, 5] + 1) % 11
    before, after = model.predict_on_batch(ids), model.predict_on_batch(changed)
    assert before.shape == (2, 8, 11)
    np.testing.assert_array_equal(before[:, :5], after[:, :5])  # positions before the change: untouched
    assert not np.allclose(before[:, 5:], after[:, 5:], atol=1e-6)  # from it on: it is read


def test_the_race_lstm_settings_keep_the_project_model_cudnn_eligible():
    s = quality.LSTM
    model = lstm.build_model(65, s["embedding_dim"], s["units"], s["layers"], s["dropout"])
    assert lstm.cudnn_problems(model) == []


def test_under_mixed_precision_the_lstm_computes_in_bfloat16_and_its_logits_stay_float32():
    s = quality.LSTM | {"precision": "mixed_bfloat16"}
    float32 = quality.lstm_model(65, s)
    quality.keras.mixed_precision.set_global_policy(s["precision"])
    try:
        mixed = quality.lstm_model(65, s)
    finally:
        quality.keras.mixed_precision.set_global_policy("float32")
    assert [layer.compute_dtype for layer in mixed.layers if "lstm" in layer.name] == ["bfloat16"] * s["layers"]
    assert mixed.get_layer("logits").compute_dtype == "float32"
    assert mixed.output.dtype == "float32"
    assert [w.dtype for w in mixed.weights] == ["float32"] * len(mixed.weights)  # weights kept in float32
    assert [w.shape for w in mixed.weights] == [w.shape for w in float32.weights]  # the same model otherwise
    assert float32.get_layer("logits").compute_dtype == "float32" and float32.get_layer("lstm_1").compute_dtype == "float32"
    assert lstm.cudnn_problems(mixed) == []


def keras_and_cpu_lstm(x, h0, c0, graph=False):
    """Each layer's outputs, last states and gradients (inputs, initial states, weights) of one
    loss over all of them, both layers holding the same weights; with `graph`, in a tf.function,
    as training runs them."""
    results = []
    for layer_class in (quality.keras.layers.LSTM, CpuLSTM):
        quality.keras.utils.set_random_seed(0)  # the same weights for both
        layer = layer_class(h0.shape[-1], return_sequences=True, return_state=True)
        layer.build(x.shape)

        def run(*inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs, h, c = layer(inputs[0], initial_state=list(inputs[1:]))
                loss = sum(tf.reduce_sum(tf.cast(v, tf.float32) * np.cos(np.arange(np.prod(v.shape))).reshape(v.shape))
                           for v in (outputs, h, c))
            return [outputs, h, c, *tape.gradient(loss, list(inputs) + [w.value for w in layer.trainable_weights])]

        run = tf.function(run) if graph else run
        results.append([np.asarray(v, np.float32) for v in run(*(tf.constant(v) for v in (x, h0, c0)))])
    return results


@pytest.fixture
def cpu_lstm_loop(monkeypatch):
    """CpuLSTM's own loop, even on a machine with a GPU (where it would run Keras')."""
    monkeypatch.setattr(CpuLSTM, "fast_loop", lambda self, mask: True)


def test_the_benchmarks_lstms_run_as_cpu_lstm_unless_told_keras_own_layer():
    s = quality.LSTM
    ours, keras_own = (quality.lstm_model(65, s, *layer) for layer in [(), (quality.keras.layers.LSTM,)])
    assert [type(layer) for layer in lstm.lstm_layers(ours)] == [CpuLSTM] * s["layers"]
    assert [type(layer) for layer in lstm.lstm_layers(keras_own)] == [quality.keras.layers.LSTM] * s["layers"]
    assert [layer.units for layer in lstm.lstm_layers(ours)] == [s["units"]] * s["layers"]
    assert [w.shape for w in ours.weights] == [w.shape for w in keras_own.weights]  # the same model otherwise


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
def test_the_cpu_lstm_computes_what_keras_lstm_does_outputs_states_and_gradients(cpu_lstm_loop, graph):
    rng = np.random.default_rng(0)
    x, h0, c0 = (rng.normal(size=shape).astype(np.float32) for shape in [(3, 9, 5), (3, 4), (3, 4)])
    keras_lstm, cpu_lstm = keras_and_cpu_lstm(x, h0, c0, graph)
    names = ["outputs", "last h", "last c", "d inputs", "d h0", "d c0", "d kernel", "d recurrent kernel", "d bias"]
    for name, expected, got in zip(names, keras_lstm, cpu_lstm, strict=True):
        assert np.abs(expected).max() > 0.01, name  # each compared value is a real one
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=name)


def test_under_mixed_bfloat16_the_cpu_lstm_stays_within_bfloat16_rounding_of_keras_lstm(cpu_lstm_loop):
    rng = np.random.default_rng(1)
    x, h0, c0 = (rng.normal(size=shape).astype(np.float32) for shape in [(8, 30, 16), (8, 32), (8, 32)])
    quality.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras_lstm, cpu_lstm = keras_and_cpu_lstm(x, h0, c0, graph=True)
    finally:
        quality.keras.mixed_precision.set_global_policy("float32")
    for expected, got in zip(keras_lstm, cpu_lstm, strict=True):
        scale = np.abs(expected).max()
        assert np.abs(got - expected).max() < 0.05 * scale  # bfloat16 keeps 8 bits: a few hundredths


def test_a_cpu_lstm_runs_its_own_loop_on_a_cpu_and_keras_loop_for_what_it_lacks():
    assert CpuLSTM(4).fast_loop(None) or tf.config.list_logical_devices("GPU")
    assert not CpuLSTM(4, dtype="float64").fast_loop(None)
    assert not CpuLSTM(4, recurrent_dropout=0.1).fast_loop(None)
    assert not CpuLSTM(4, go_backwards=True).fast_loop(None)
    assert not CpuLSTM(4).fast_loop(mask=np.ones((2, 3), bool))


def test_the_rate_warms_up_then_falls_along_a_cosine_to_a_tenth_at_the_end_of_the_budget():
    rate = quality.cosine_rate(1e-3, warmup=100, steps=1100)
    assert [float(rate(step)) for step in (0, 50, 100, 600, 1100, 5000)] == pytest.approx(
        [0.0, 5e-4, 1e-3, 1e-3 * (1 + quality.FLOOR) / 2, 1e-4, 1e-4], rel=1e-5, abs=1e-9)
    rate = quality.cosine_rate(3e-3, warmup=0, steps=1000)  # no warmup: from the full rate at the first step
    assert [float(rate(step)) for step in (0, 500, 1000)] == pytest.approx([3e-3, 3e-3 * 0.55, 3e-4], rel=1e-5)
    short, long = quality.cosine_rate(1.0, 0, 300), quality.cosine_rate(1.0, 0, 1000)
    assert float(short(300)) == pytest.approx(0.1) and float(long(300)) > 0.7  # each over its own budget


# The benchmark's models at a size that compiles and steps in moments.
TINY = {"lstm": quality.LSTM | {"units": 8, "embedding_dim": 4, "batch_size": 2, "context": 5},
        "transformer": quality.TRANSFORMER | {"layers": 1, "heads": 2, "width": 8, "batch_size": 2, "context": 4}}


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_both_models_start_out_predicting_the_training_texts_character_frequencies(monkeypatch, kind, precision):
    """Each model's untrained logits' bias is the log share of each character in the training
    text (counted once more each), and what it first predicts follows it."""
    monkeypatch.setattr(quality, "MODELS", TINY)
    ids = np.array([0] * 30 + [1] * 9 + [2] * 3 + [4])  # 3 never occurs
    shares = (np.bincount(ids, minlength=5) + 1) / (len(ids) + 5)
    np.testing.assert_allclose(training.unigram_log_shares({"tokens": ids}, {"tokens": [None] * 5}), np.log(shares),
                               rtol=1e-6)
    try:
        model, _ = quality.compiled(kind, TINY[kind] | {"precision": precision}, 5, ids, steps=10)
    finally:
        quality.keras.mixed_precision.set_global_policy("float32")
    np.testing.assert_allclose(model.get_layer("logits").bias.numpy(), np.log(shares), rtol=1e-6)
    first = model.predict_on_batch(np.zeros((1, TINY[kind]["context"]), np.int32))  # at first, what it predicts is mostly the bias
    assert np.corrcoef(first[0, -1], np.log(shares))[0, 1] > 0.9
    assert first.dtype == np.float32


def test_a_run_trains_exactly_its_steps_on_the_text_without_the_dev_slice_and_scores_both_block_lengths(
        tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "MODELS", TINY)
    monkeypatch.setattr(quality, "BLOCKS", (4, 8))
    (tmp_path / "tiny.txt").write_text(SHAKESPEARE_CHARS * 20, encoding="utf-8")  # 1,300: 1,170 train, 117 of them dev
    seen, window_dataset, steps, fit = [], quality.lstm.window_dataset, [], quality.keras.Model.fit
    monkeypatch.setattr(quality.lstm, "window_dataset", lambda split, *a, **k: seen.append(len(split["tokens"])) or
                        window_dataset(split, *a, **k))
    monkeypatch.setattr(quality.keras.Model, "fit", lambda self, data, **k: steps.append(k["steps_per_epoch"]) or
                        fit(self, data, **k))
    dev = quality.run(tmp_path / "tiny.txt", "lstm", "float32", 0.01, steps=7, seed=2, dev=True)
    held_out = quality.run(tmp_path / "tiny.txt", "transformer", "float32", 0.01, steps=3, seed=2, dev=False)
    assert seen == [1053, 1170] and steps == [7, 3]
    assert dev["split"] == "dev" and dev["scored_characters"] == 112  # of 116 predictable: a multiple of 8
    assert held_out["split"] == "held_out" and held_out["scored_characters"] == 128
    for r in (dev, held_out):
        assert list(r["loss"]) == ["4", "8"] and all(0 < v < math.log(65) + 1 for v in r["loss"].values())
    again = quality.run(tmp_path / "tiny.txt", "lstm", "float32", 0.01, steps=7, seed=2, dev=True)
    assert again["loss"] == dev["loss"]  # a seed is a run


def test_a_block_longer_than_the_context_is_read_in_windows_sliding_by_half_the_context():
    """Each position's logits come from exactly one window: in order, once each, from all the
    positions before it in the first window, and from at least half the context after that."""
    calls = []

    def predict(x):  # each position's output: (its position in the block, where its window starts)
        calls.append(x.shape)
        return np.stack([x, np.broadcast_to(x[:, :1], x.shape)], axis=-1)

    inputs = np.tile(np.arange(20), (3, 1))
    out = quality.windowed(predict, inputs, context=8)
    assert out.shape == (3, 20, 2) and all(shape == (3, 8) for shape in calls)
    assert out[0, :, 0].tolist() == list(range(20))
    read = out[0, :, 0] - out[0, :, 1]  # characters before each position in its window
    assert read[:8].tolist() == list(range(8)) and (read[8:] >= 4).all() and (read < 8).all()
    assert quality.windowed(predict, inputs[:, :8], context=8).shape == (3, 8, 2)  # short enough: read whole
    model = quality.transformer(11, 8, layers=1, heads=2, width=8)
    ids = np.random.default_rng(0).integers(0, 11, size=(2, 20)).astype(np.int32)
    np.testing.assert_allclose(quality.windowed(model.predict_on_batch, ids, 8)[:, 12:16],
                               model.predict_on_batch(ids[:, 8:16])[:, 4:], rtol=1e-5)  # the third window's half


def test_each_budget_is_the_steps_the_model_trains_in_its_minutes_at_its_faster_precision():
    speeds = {"lstm": {"float32": 6400, "mixed_bfloat16": 12800}, "transformer": {"float32": 7680}}
    assert quality.budgets(speeds, (3, 10), 1.0) == {"lstm": {"3": 360, "10": 1200}, "transformer": {"3": 1800, "10": 6000}}
    assert quality.budgets(speeds, (3,), 0.01) == {"lstm": {"3": 4}, "transformer": {"3": 18}}
    assert quality.budgets(speeds, (3,), 1e-6) == {"lstm": {"3": 1}, "transformer": {"3": 1}}  # a step at least


def test_the_rate_is_chosen_on_the_dev_slice_and_a_target_needs_a_margin_larger_than_the_spread(monkeypatch):
    monkeypatch.setattr(quality, "MODELS", {"lstm": {"learning_rate": 2}, "transformer": {"learning_rate": 2}})
    grid = [{"model": kind, "learning_rate": rate, "loss": {"64": loss, "256": 0.0}}
            for kind, rate, loss in [("lstm", 1, 2.0), ("lstm", 2, 1.9), ("lstm", 4, 1.95),
                                     ("transformer", 1, 2.1), ("transformer", 2, 2.2), ("transformer", 4, 2.3)]]
    assert quality.chosen_rates(grid) == {"lstm": 2, "transformer": 1}  # by the blocks of 64 only
    assert quality.beyond_the_edge(grid) == {"transformer": [0.25]}  # its best is its lowest: half of it is tried
    grid[0]["loss"]["64"] = 1.0
    grid[5]["loss"]["64"] = 1.0
    assert quality.beyond_the_edge(grid) == {"lstm": [0.25], "transformer": [4.0]}
    finals = [{"model": kind, "minutes": m, "loss": {"64": loss}}
              for kind, m, losses in [("lstm", "3", [1.50, 1.52, 1.51]), ("transformer", "3", [1.60, 1.61, 1.62]),
                                      ("lstm", "10", [1.40, 1.45, 1.41]), ("transformer", "10", [1.43, 1.44, 1.44])]
              for loss in losses]
    result = quality.summary(finals)
    assert result["summary"]["lstm"]["3"]["64"] == {"mean": 1.51, "spread": 0.02, "runs": 3}
    assert result["targets"]["below_transformer_at_3_min_in_blocks_of_64"] == {
        "margin": 0.1, "larger_spread": 0.02, "met": True}
    assert result["targets"]["below_transformer_at_10_min_in_blocks_of_64"] == {
        "margin": 0.0167, "larger_spread": 0.05, "met": False}  # lower, but within the spread


def test_the_result_goes_under_quality_and_its_key_keeping_every_other_key(tmp_path):
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"training": {"a": 1}, "quality": {"other": 2}}))
    quality.write_result(out, {"runs": {}}, "race")
    assert json.loads(out.read_text()) == {"training": {"a": 1}, "quality": {"other": 2, "race": {"runs": {}}}}


def test_bfloat16_is_a_contender_only_on_a_cpu_that_runs_it_natively(monkeypatch):
    """Which precisions speeds() times (the end-to-end run below checks it times each of them)."""
    monkeypatch.setattr(quality, "bfloat16_native", lambda: True)
    assert quality.precisions() == ["float32", "mixed_bfloat16"]
    monkeypatch.setattr(quality, "bfloat16_native", lambda: False)
    assert quality.precisions() == ["float32"]  # bfloat16 emulated in software is no contender


def assert_each_model_timed(speeds: dict, precisions: list[str]) -> None:
    """speeds(): every model, at each of `precisions`, some characters per second."""
    assert {kind: list(by_precision) for kind, by_precision in speeds.items()} == {
        kind: precisions for kind in quality.MODELS}
    assert all(isinstance(cps, int) and cps > 0 for by_precision in speeds.values() for cps in by_precision.values())


@pytest.mark.skipif(quality.bfloat16_native(), reason="this CPU runs bfloat16: the end-to-end run times it")
def test_each_model_is_timed_in_mixed_bfloat16_too_where_the_cpu_has_it(tmp_path, monkeypatch):
    """On a CPU without bfloat16 the end-to-end run below times float32 only: here every model
    also trains under mixed bfloat16 (emulated, so slowly), as it would on a CPU that has it."""
    (tmp_path / "tiny.txt").write_text(SHAKESPEARE_CHARS * 200, encoding="utf-8")
    monkeypatch.setattr(quality, "bfloat16_native", lambda: True)
    try:
        speeds = quality.speeds(tmp_path / "tiny.txt", seconds=0.05)
    finally:
        quality.keras.mixed_precision.set_global_policy("float32")
    assert_each_model_timed(speeds, ["float32", "mixed_bfloat16"])


def test_the_race_runs_end_to_end_at_a_thousandth_of_its_budgets(tmp_path):
    """main() as docs/benchmarks.md runs it, every budget a thousandth: the speeds, the rate grid
    on the dev slice, then every model, budget and seed, each in its own process at its faster
    precision, two side by side; the result under quality -> race."""
    (tmp_path / "tiny.txt").write_text(SHAKESPEARE_CHARS * 300, encoding="utf-8")
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"training": {"kept": True}}))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/quality.py"), "--scale", "0.001",
                           "--corpus", str(tmp_path / "tiny.txt"), "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["training"] == {"kept": True}
    result = results["quality"]["race"]
    assert_each_model_timed(result["characters_per_second_by_precision"], quality.precisions())  # all this CPU runs
    grid = result["dev_grid"]
    first = len(quality.MODELS) * len(quality.RATE_FACTORS)
    assert [(r["model"], r["split"]) for r in grid[:first]] == [(k, "dev") for k in quality.MODELS
                                                                for _ in quality.RATE_FACTORS]
    extended = quality.beyond_the_edge(grid[:first])
    assert [(r["model"], r["learning_rate"]) for r in grid[first:]] == [
        (k, pytest.approx(quality.MODELS[k]["learning_rate"] * f)) for k, fs in extended.items() for f in fs]
    assert all(r["split"] == "dev" for r in grid)
    for kind, speeds in result["characters_per_second_by_precision"].items():
        assert result["precision"][kind] == max(speeds, key=speeds.get)
        assert [r["learning_rate"] for r in grid[:first] if r["model"] == kind] == pytest.approx(
            [quality.MODELS[kind]["learning_rate"] * f for f in quality.RATE_FACTORS])
    finals = result["runs"]
    assert sorted((r["model"], r["minutes"], r["seed"]) for r in finals) == sorted(
        (k, str(m), seed) for k in quality.MODELS for m in quality.MINUTES for seed in quality.SEEDS)
    for r in finals:
        assert r["split"] == "held_out" and r["learning_rate"] == result["chosen_rate"][r["model"]]
        assert r["steps"] == result["steps"][r["model"]][r["minutes"]] and r["precision"] == result["precision"][r["model"]]
        assert list(r["loss"]) == ["64", "256"] and all(math.isfinite(v) for v in r["loss"].values())
    assert len(result["targets"]) == len(quality.MINUTES) * len(quality.BLOCKS)
    assert "3 min, blocks of 64: the LSTM" in done.stdout


def test_the_pipeline_figure_comes_from_the_preset_run_by_dvc_exp_run(tmp_path):
    """quality.py --pipeline, every budget a hundredth: Tiny Shakespeare's stand-in as a text of
    your own through every stage by `dvc exp run` with the committed preset, read from
    train-lstm's own metrics."""
    (tmp_path / "tiny.txt").write_text(SHAKESPEARE_CHARS * 300, encoding="utf-8")
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"training": {"kept": True}}))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/quality.py"), "--pipeline", "--scale", "0.01",
                           "--seeds", "1", "--corpus", str(tmp_path / "tiny.txt"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    result = results["quality"]["shakespeare_pipeline"]
    assert results["training"] == {"kept": True} and result["preset"] == "benchmarks/presets/tinyshakespeare.yaml"
    run, = result["runs"].values()
    assert 0 < run["best_val_loss"] < math.log(len(set(SHAKESPEARE_CHARS))) + 0.5
    assert run["tokens_trained"] == pytest.approx(result["max_tokens"], abs=64 * 100)
    assert f"mean {result['mean_best_val_loss']}" in done.stdout


@pytest.mark.parametrize("script, key", [("scale", "scale"), ("quality", "quality"), ("pretraining", "pretraining"),
                                         ("cpu_lstm_speed", "cpu_lstm"), ("alice_recipe", "alice_recipe"),
                                         ("downloads", "downloads"), ("report", "report")])
def test_a_full_run_keeps_the_key_of_every_other_benchmark_script(script, key):
    """run.py rewrites metrics/benchmarks.json: the key each other script writes there is kept
    (cpu_lstm_speed.py's was dropped before)."""
    assert f'"{key}"' in (ROOT / f"benchmarks/{script}.py").read_text()  # the script writes that key
    assert key in run.OTHER_BENCHMARKS


# benchmarks/alice_recipe.py: candidates for Alice's recipe are compared on a dev slice only

def test_an_alice_recipe_trial_trains_on_the_training_head_alone_and_is_appended_to_the_dev_trials(tmp_path, corpora):
    """A trial gives the pipeline Alice's training head (the cleaned book without the tail the
    default run holds back) as a text of its own, so its val_loss is on the head's last 10%,
    the dev slice; it trains with the changes given (window.* to window) and adds one entry."""
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"training": {"kept": True}, "alice_recipe": {"dev_trials": [{"earlier": 1}]}}))
    changes = {"epochs": 1, "layers": 1, "units": 8, "embedding_dim": 4, "ema": None, "window.step": 100}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/alice_recipe.py"), "trial", json.dumps(changes),
                           "--out", str(out), "--corpora", str(corpora), "--keep"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["training"] == {"kept": True}
    earlier, trial = results["alice_recipe"]["dev_trials"]
    assert earlier == {"earlier": 1} and trial["changes"] == changes and trial["epochs_run"] == 1
    assert 0 < trial["best_val_loss"] < math.log(49) + 0.5
    work = Path(done.stderr.split("working in ")[1].split()[0])
    full = (work / "dev-full-text/data/clean/corpus.txt").read_text(encoding="utf-8")
    dev = work / "dev"
    head = (dev / "data/clean/corpus.txt").read_text(encoding="utf-8")
    assert head == full[:len(full) - round(len(full) * 0.1)] + "\n"  # the head, ended as strip-boilerplate ends a text
    params = yaml.safe_load((dev / "params.yaml").read_text())
    assert params["window"]["step"] == 100 and params["train-lstm"]["units"] == 8
    assert params["download-gutenberg"] | {"mirrors": None} == {"book_ids": [], "catalog": None,
                                                                "texts": ["alice-training-head.txt"], "mirrors": None}
    shutil.rmtree(work)


@pytest.mark.parametrize("method", ["tutorial", "ours"])
def test_timed_training_runs_each_method_on_the_projects_windows(tmp_path, method):
    """benchmarks/timed_training.py on a tiny project's data stages, for a few seconds: it reads
    the mapped windows as train-lstm does, and writes its figures."""
    from conftest import run_data_stages
    run_data_stages(tmp_path, n_words=3000)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/timed_training.py"), method, "--project",
                           str(tmp_path), "--minutes", "0.05", "--out", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert 0 < result["held_out_loss"] < math.log(60) + 1 and result["tokens_per_second"] > 0
    assert result["method"] == method and result["held_out_characters"] > 0
    assert (result["training_data_mib"] > 0) == (method == "tutorial")  # only the tutorial's way holds the windows
