"""The benchmarks' own parts (benchmarks/ is run by hand, not here): the tutorial's data layout
and loop, and the held-out windows both methods are scored on."""

import sys

import numpy as np

import lstm
import run
import scale
from sampling import Stepper
import training
import tutorial


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
    windows, targets = training.held_out(ids, stride=10)
    assert windows.shape == (15, training.CONTEXT)
    assert targets.tolist() == list(range(100, 250, 10))
    assert (windows[:, -1] + 1 == targets).all()
    log_probs = np.log(np.full((2, 4), 0.25))
    assert training.mean_nll(log_probs, np.array([0, 3])) == np.log(4)


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
