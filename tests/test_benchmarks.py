"""The benchmarks' own parts (benchmarks/ is run by hand, not here): the tutorial's data layout
and loop, and the held-out windows both methods are scored on; quality.py's split of Tiny
Shakespeare, its scoring, its Transformer and how it compares the two models."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

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


@pytest.mark.parametrize("kind", ["lstm", "lstm_large"])
def test_both_lstms_settings_keep_the_project_model_cudnn_eligible(kind):
    s = quality.MODELS[kind]
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
    s = quality.LSTM_LARGE
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


def test_the_learning_rate_warms_up_linearly_holds_then_halves_every_half_life():
    schedule = quality.Schedule(1e-3, warmup=100, hold=500, half_life=1000)
    rates = [float(schedule(step)) for step in (0, 49, 100, 500, 1500, 3500)]
    assert rates == pytest.approx([1e-3 / 101, 1e-3 * 50 / 101, 1e-3, 1e-3, 1e-3 / 2, 1e-3 / 8], rel=1e-5)
    assert float(quality.Schedule(3e-3, warmup=0, hold=10, half_life=10)(0)) == pytest.approx(3e-3)  # no warmup


def test_with_a_cooldown_the_rate_falls_linearly_to_0_over_the_last_share_of_the_budget():
    schedule = quality.Schedule(1e-3, warmup=0, hold=500, half_life=1000, cooldown=0.2)
    assert float(schedule(1500)) == pytest.approx(5e-4)
    schedule.done.assign(0.95)
    assert float(schedule(1500)) == pytest.approx(1.25e-4)  # a quarter of the cooldown left
    plain = quality.Schedule(1e-3, warmup=0, hold=500, half_life=1000)
    plain.done.assign(0.95)
    assert float(plain(1500)) == pytest.approx(5e-4)  # no cooldown: the budget does not matter


def test_the_clock_tells_the_schedule_the_share_of_its_seconds_trained():
    class Model:
        stop_training = False

    def cooled_at(cooldown, seconds_trained):
        schedule = quality.Schedule(1.0, warmup=0, hold=1e9, half_life=1.0, cooldown=cooldown)
        clock = quality.Clock(100.0, every=1000.0, probe=lambda: 0.0, schedule=schedule)
        clock.set_model(Model())
        clock.on_train_begin()
        clock.on_train_batch_end(0)  # the untimed first step
        clock.clock = seconds_trained
        clock.last = quality.time.monotonic()
        clock.on_train_batch_end(1)
        return float(schedule(0)), clock.model.stop_training

    assert cooled_at(0.2, 50.0)[0] == 1.0  # before the last 20 seconds
    assert cooled_at(0.2, 80.0)[0] == pytest.approx(1.0, abs=1e-3)
    assert cooled_at(0.2, 90.0)[0] == pytest.approx(0.5, abs=1e-3)
    assert cooled_at(0.2, 100.0) == (0.0, True)
    assert cooled_at(0.0, 99.0)[0] == 1.0  # no cooldown: left alone


# The benchmark's LSTM settings at a size that compiles and steps in moments.
TINY_LSTM = quality.LSTM | {"units": 8, "embedding_dim": 4, "batch_size": 2, "context": 5}


def test_the_compiled_training_step_reads_the_cooled_rate():
    """The share trained is read at every step, not frozen when TensorFlow traces it: at the
    end of a cooldown no weight moves."""
    s = TINY_LSTM | {"cooldown": 0.2, "precision": "float32"}
    model, dataset, _, rate = quality.compiled("lstm", s, 7, np.arange(60) % 7)
    batches = iter(dataset)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.train_on_batch(*next(batches))  # traced and run at the full rate
    moved = [w.numpy().copy() for w in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, moved))
    rate.done.assign(1.0)
    model.train_on_batch(*next(batches))
    for a, b in zip(moved, model.trainable_weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_the_probe_scores_the_moving_average_of_the_weights_then_gives_the_model_its_own_back():
    """With ema_momentum, inside holding_averaged_weights the model holds the average of its weights
    after each step (the first step's weights, then m * average + (1 - m) * weights), and its own
    weights again after; without, its own weights throughout."""
    s = TINY_LSTM | {"precision": "float32", "ema_momentum": 0.5}
    ids = np.arange(60) % 7
    model, dataset, *_ = quality.compiled("lstm", s, 7, ids)
    batches, average = iter(dataset), None
    for _ in range(3):
        model.train_on_batch(*next(batches))
        weights = [w.numpy().copy() for w in model.trainable_weights]
        average = weights if average is None else [0.5 * a + 0.5 * w for a, w in zip(average, weights)]
    assert any(not np.allclose(a, w) for a, w in zip(average, weights))
    for _ in range(2):  # a probe leaves both the weights and their average as they were
        with lstm.holding_averaged_weights(model):
            for a, w in zip(average, model.trainable_weights):
                np.testing.assert_allclose(w.numpy(), a, rtol=1e-5, atol=1e-6)
        for own, w in zip(weights, model.trainable_weights):
            np.testing.assert_allclose(w.numpy(), own, rtol=1e-5, atol=1e-6)

    plain, dataset, *_ = quality.compiled("lstm", s | {"ema_momentum": None}, 7, ids)
    plain.train_on_batch(*next(iter(dataset)))
    weights = [w.numpy().copy() for w in plain.trainable_weights]
    with lstm.holding_averaged_weights(plain):
        for own, w in zip(weights, plain.trainable_weights):
            np.testing.assert_array_equal(w.numpy(), own)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_an_lstm_starts_out_predicting_the_training_texts_character_frequencies(precision):
    """With unigram_bias its untrained logits' bias is the log share of each character in the
    training text (counted once more each), and what it first predicts follows it; without, zeros."""
    ids = np.array([0] * 30 + [1] * 9 + [2] * 3 + [4])  # 3 never occurs
    s = TINY_LSTM | {"precision": precision}
    shares = (np.bincount(ids, minlength=5) + 1) / (len(ids) + 5)
    np.testing.assert_allclose(training.unigram_log_shares({"tokens": ids}, {"tokens": [None] * 5}), np.log(shares),
                               rtol=1e-6)
    try:
        model = quality.compiled("lstm", s, 5, ids)[0]
        plain = quality.compiled("lstm", s | {"unigram_bias": False}, 5, ids)[0]
    finally:
        quality.keras.mixed_precision.set_global_policy("float32")
    np.testing.assert_allclose(model.get_layer("logits").bias.numpy(), np.log(shares), rtol=1e-6)
    first = model.predict_on_batch(np.zeros((1, 5), np.int32))  # what it predicts is set by the bias alone, at first
    assert np.corrcoef(first[0, -1], np.log(shares))[0, 1] > 0.9
    np.testing.assert_array_equal(plain.get_layer("logits").bias.numpy(), np.zeros(5))


def test_time_to_reach_interpolates_between_the_probes_around_the_target():
    curve = [[10.0, 3.0], [20.0, 2.0], [30.0, 1.5]]
    assert quality.time_to_reach(curve, 1.75) == 25.0
    assert quality.time_to_reach(curve, 2.0) == 20.0
    assert quality.time_to_reach(curve, 3.5) == 10.0  # already there at the first probe
    assert quality.time_to_reach(curve, 1.0) is None  # never within the run
    assert quality.time_to_reach([[10.0, 2.0], [20.0, 2.5], [30.0, 1.0]], 1.5) == pytest.approx(20.0 + 10.0 / 1.5)


def test_the_figures_at_the_marks_are_the_probes_there_and_the_targets_follow():
    curve = [[s, round(3.0 - s / 600, 4)] for s in range(15, 901, 15)]
    assert quality.at_minutes(curve, 1.0, 15) == {"3": 2.7, "10": 2.0, "15": 1.5}
    assert quality.at_minutes([[1.8, 2.5], [6.0, 2.1]], 0.01, 10) == {"3": 2.5, "10": 2.1}
    slow_start = [[180.0, 2.9], [600.0, 2.5], [900.0, 1.4]]
    runs = {"lstm": {"curve": curve, "held_out_loss_at_minutes": {"3": 2.7, "10": 2.0, "15": 1.5}},
            "lstm_large": {"curve": slow_start, "held_out_loss_at_minutes": {"3": 2.9, "10": 2.5, "15": 1.4}},
            "transformer": {"curve": [[180.0, 2.8], [600.0, 2.75]], "held_out_loss_at_minutes": {"3": 2.8, "10": 2.75}}}
    result = quality.compare(runs, 1.0)
    assert result["lstm_reaches_transformer_3_min_loss_after_seconds"] == pytest.approx(120.0)
    assert result["lstm_reaches_transformer_3_min_loss_share_of_3_min"] == round(120 / 180, 3)
    assert result["transformer_reaches_lstm_3_min_loss_after_seconds"] is None
    assert result["lstm_large_reaches_transformer_3_min_loss_after_seconds"] == pytest.approx(180 + 420 * 0.1 / 0.4)
    assert result["transformer_reaches_lstm_large_3_min_loss_after_seconds"] == pytest.approx(180.0)
    assert result["targets"] == {
        "lstm": {"below_transformer_at_3_min": True, "below_transformer_at_10_min": True, "at_most_1.47_at_15_min": False},
        "lstm_large": {"below_transformer_at_3_min": False, "below_transformer_at_10_min": True,
                       "at_most_1.47_at_15_min": True}}
    for kind, run in runs.items():
        run |= {"settings": quality.MODELS[kind] | {"precision": "float32"}, "parameters": 1000, "tokens_per_second": 10,
                "passes": 1.0, "budget_seconds": quality.BUDGETS[kind] * 60.0}
    report = quality.report(result | {"runs": runs, "scale": 1.0, "held_out_characters": 100,
                                      "machine": {"cpu": "a CPU", "cores": 2},
                                      "characters_per_second_by_precision": {k: {"float32": 10} for k in runs}})
    assert "the LSTM reaches the Transformer's 3-minute loss (2.800) after 120 s of training: 0.667x the 3 minutes" in report
    assert "the Transformer reaches the LSTM's 3-minute loss (2.700) not within its 10 minutes" in report
    assert "the Transformer reaches the large LSTM's 3-minute loss (2.900) after 180 s" in report
    assert report.endswith("target, the LSTM below transformer at 3 min: met\n"
                           "target, the LSTM below transformer at 10 min: met\n"
                           "target, the LSTM at most 1.47 at 15 min: MISSED\n"
                           "target, the large LSTM below transformer at 3 min: MISSED\n"
                           "target, the large LSTM below transformer at 10 min: met\n"
                           "target, the large LSTM at most 1.47 at 15 min: met")


def test_the_result_goes_under_quality_shakespeare_keeping_every_other_key(tmp_path):
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"training": {"a": 1}, "quality": {"other": 2}}))
    quality.write_result(out, {"runs": {}})
    assert json.loads(out.read_text()) == {"training": {"a": 1}, "quality": {"other": 2, "shakespeare": {"runs": {}}}}


def test_bfloat16_is_a_contender_only_on_a_cpu_that_runs_it_natively(monkeypatch):
    """Which precisions speeds() times (the end-to-end run below checks it times each of them)."""
    monkeypatch.setattr(quality, "bfloat16_native", lambda: True)
    assert quality.precisions() == ["float32", "mixed_bfloat16"]
    monkeypatch.setattr(quality, "bfloat16_native", lambda: False)
    assert quality.precisions() == ["float32"]  # bfloat16 emulated in software is no contender


def assert_each_model_timed(speeds: dict, precisions: list[str]) -> None:
    """speeds(): every model, at each of `precisions`, some characters per second."""
    assert {kind: list(by_precision) for kind, by_precision in speeds.items()} == {
        kind: precisions for kind in quality.BUDGETS}
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


def test_the_benchmark_runs_end_to_end_at_a_hundredth_of_its_budgets(tmp_path):
    """main() as docs/benchmarks.md runs it, every budget a hundredth: the speed probe, each model in its
    own process at the faster precision, and the result under quality -> shakespeare."""
    (tmp_path / "tiny.txt").write_text(SHAKESPEARE_CHARS * 300, encoding="utf-8")
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"training": {"kept": True}}))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/quality.py"), "--scale", "0.01",
                           "--corpus", str(tmp_path / "tiny.txt"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["training"] == {"kept": True}
    result = results["quality"]["shakespeare"]
    assert list(result["runs"]) == list(quality.BUDGETS)
    assert_each_model_timed(result["characters_per_second_by_precision"], quality.precisions())  # all this CPU runs
    for kind, run in result["runs"].items():
        speeds = result["characters_per_second_by_precision"][kind]
        assert run["settings"]["precision"] == max(speeds, key=speeds.get), kind
        assert run["curve"] and all(math.isfinite(loss) for _, loss in run["curve"]), kind
        assert list(run["held_out_loss_at_minutes"]) == [str(m) for m in quality.MARKS if m <= quality.BUDGETS[kind]]
    assert list(result["targets"]) == ["lstm", "lstm_large"]
    assert "target, the large LSTM at most 1.47 at 15 min:" in done.stdout


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
                                         ("cpu_lstm_speed", "cpu_lstm"), ("alice_recipe", "alice_recipe")])
def test_a_full_run_keeps_the_key_of_every_other_benchmark_script(script, key):
    """run.py rewrites metrics/benchmarks.json: the key each other script writes there is kept
    (cpu_lstm_speed.py's was dropped before)."""
    assert f'"{key}"' in (ROOT / f"benchmarks/{script}.py").read_text()  # the script writes that key
    assert key in run.OTHER_BENCHMARKS
