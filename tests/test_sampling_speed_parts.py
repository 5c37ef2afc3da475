"""The fast sampler's parts, on models made here (no TensorFlow): the compiled step against a plain
NumPy LSTM for shapes the C pads and loops over, rows of a batch kept apart, and the draw's
top-k, top-p and banned tokens."""

import numpy as np
import pytest

from lstm_textgen import sampling
from lstm_textgen.sampling import Stepper, generate, sample_next


def random_weights(vocab: int, embedding: int, units: list[int], seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sizes = [embedding, *units]
    weights = {"embedding": rng.normal(0, 1, (vocab, embedding)),
               "logits_kernel": rng.normal(0, 0.5, (units[-1], vocab)), "logits_bias": rng.normal(0, 0.5, vocab)}
    for i, (below, u) in enumerate(zip(sizes, units), start=1):
        weights |= {f"lstm_{i}_kernel": rng.normal(0, 0.5, (below, 4 * u)),
                    f"lstm_{i}_recurrent_kernel": rng.normal(0, 0.5, (u, 4 * u)), f"lstm_{i}_bias": rng.normal(0, 0.5, 4 * u)}
    return {key: w.astype(np.float32) for key, w in weights.items()}


def numpy_lstm_logits(weights: dict, tokens: np.ndarray) -> np.ndarray:
    """Keras' LSTM written out: gates input, forget, candidate, output; (batch, steps, vocab)."""
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    x = weights["embedding"][tokens].astype(np.float64)
    for i in range(1, sum(key.endswith("_recurrent_kernel") for key in weights) + 1):
        kernel, recurrent, bias = (weights[f"lstm_{i}_{part}"] for part in ("kernel", "recurrent_kernel", "bias"))
        h = c = np.zeros((len(tokens), recurrent.shape[0]))
        outputs = []
        for t in range(tokens.shape[1]):
            gate_in, forget, candidate, gate_out = np.split(x[:, t] @ kernel + h @ recurrent + bias, 4, axis=-1)
            c = sigmoid(forget) * c + sigmoid(gate_in) * np.tanh(candidate)
            h = sigmoid(gate_out) * np.tanh(c)
            outputs.append(h)
        x = np.stack(outputs, axis=1)
    return x @ weights["logits_kernel"] + weights["logits_bias"]


def test_the_step_matches_a_plain_lstm_with_three_layers_of_odd_sizes():
    """Units and a vocabulary that are no multiple of the C's panels of 64, and 3 layers."""
    weights = random_weights(vocab=7, embedding=5, units=[5, 70, 33])
    tokens = np.random.default_rng(1).integers(0, 7, size=(2, 12))
    expected = numpy_lstm_logits(weights, tokens)
    stepper = Stepper(weights)
    state = stepper.initial_state(2)
    for t in range(tokens.shape[1]):
        logits, state = stepper.step(tokens[:, t], state)
        np.testing.assert_allclose(logits, expected[:, t], rtol=1e-4, atol=1e-5)


def test_each_row_of_a_batch_steps_as_it_would_alone():
    stepper = Stepper(random_weights(vocab=11, embedding=4, units=[16, 24]))
    tokens = np.random.default_rng(2).integers(0, 11, size=(3, 8))
    together, alone = stepper.initial_state(3), [stepper.initial_state(1) for _ in range(3)]
    for t in range(tokens.shape[1]):
        logits, together = stepper.step(tokens[:, t], together)
        for row in range(3):
            row_logits, alone[row] = stepper.step(tokens[row:row + 1, t], alone[row])
            assert np.array_equal(row_logits[0], logits[row])


def test_top_p_keeps_the_nucleus_and_top_k_counts_only_tokens_not_banned():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 2000))
    rng = np.random.default_rng(0)
    assert set(sample_next(logits, 1.0, None, rng, top_p=0.7)) == {0, 1}  # 0.5 before the third: it is out
    assert set(sample_next(logits, 1.0, None, rng, top_p=0.5)) == {0}
    assert set(sample_next(logits, 1.0, 2, rng, banned=[0])) == {1, 2}
    assert set(sample_next(logits, 1.0, None, rng, banned=[1, 3])) == {0, 2}


def test_a_batch_generates_rows_that_stop_at_the_end_token():
    stepper = Stepper(random_weights(vocab=6, embedding=3, units=[8]))
    rows = generate(stepper, [np.array([1, 2])] * 3, 40, 2.0, None, np.random.default_rng(3), end_id=5, banned=[0])
    assert len(rows) == 3 and all(len(row) <= 40 and 5 not in row and 0 not in row for row in rows)
    assert min(map(len, rows)) < 40  # at a high temperature the end token comes up within 40 draws


def test_ids_outside_the_vocabulary_are_refused_not_read():
    stepper = Stepper(random_weights(vocab=6, embedding=3, units=[8]))
    with pytest.raises(ValueError, match="token ids"):
        stepper.step(np.array([6]), stepper.initial_state(1))
    with pytest.raises(ValueError, match="token ids"):
        sample_next(np.zeros((1, 6)), 1.0, None, np.random.default_rng(), banned=[-1])


def test_streaming_each_token_draws_the_text_of_one_call():
    """generate runs the C once for all tokens, or once per token for on_token: the same text."""
    stepper = Stepper(random_weights(vocab=9, embedding=3, units=[8, 8]))
    seeds, streamed = [np.array([1, 2, 3])] * 2, []
    settings = dict(length=60, temperature=1.5, top_k=6, top_p=0.9, end_id=1, banned=[0])
    at_once = generate(stepper, seeds, rng=np.random.default_rng(4), **settings)
    one_by_one = generate(stepper, seeds, rng=np.random.default_rng(4), on_token=streamed.append, **settings)
    assert at_once == one_by_one
    assert len(streamed) < 60  # both rows ended, one well before the other
    assert [row[:row.index(1)] for row in np.array(streamed).T.tolist()] == at_once


@pytest.mark.parametrize("settings", [dict(), dict(top_k=5), dict(top_p=0.8), dict(top_k=9, top_p=0.5, banned=[0, 3]),
                                      dict(end_id=2, temperature=1.5)])
def test_the_numpy_step_and_draw_give_the_c_ones_text(settings, monkeypatch):
    """Without a C compiler the NumPy step and draw take over, and draw the same text for the same
    seed and settings: two rows of 300 tokens, through 2 layers whose sizes no panel divides."""
    stepper = Stepper(random_weights(vocab=41, embedding=12, units=[70, 33], seed=4))
    seeds = [np.array([1, 2, 3]), np.array([7, 8, 9])]
    settings = {"temperature": 0.8, "top_k": None, **settings}
    texts = {}
    for use_c in (True, False):
        monkeypatch.setattr(sampling, "USE_C", use_c)
        assert (sampling.compiled() is not None) == use_c
        texts[use_c] = generate(stepper, seeds, 300, rng=np.random.default_rng(11), **settings)
    assert texts[True] == texts[False]
    assert sum(map(len, texts[True])) > (20 if "end_id" in settings else 500)  # long enough to tell apart


def test_the_numpy_draw_keeps_the_nucleus_and_the_top_k_as_the_c_does(monkeypatch):
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]], np.float32))
    for use_c in (True, False):
        monkeypatch.setattr(sampling, "USE_C", use_c)
        rng = np.random.default_rng(0)
        drawn = {tuple(sample_next(logits, 1.0, None, rng, top_p=0.7)) for _ in range(200)}
        assert {d[0] for d in drawn} == {0, 1} and {d[1] for d in drawn} == {3, 2}
        drawn = {tuple(sample_next(logits, 1.0, 1, rng, banned=[0])) for _ in range(50)}
        assert drawn == {(1, 3)}
