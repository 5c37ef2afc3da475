"""train-lstm's training recipe: the token-counted schedule and budget, clipping, the unigram bias
start, the weights' moving average, the precision, and the CPU time loop; on real training."""

import json
import os
import zipfile

import numpy as np
import pytest

from conftest import TINY, run_data_stages, write_params
from lstm_textgen.errors import UserError
from lstm_textgen.files import MappedVector, write_npy
from lstm_textgen import training

import keras  # noqa: E402
from lstm_textgen import model as lstm  # noqa: E402

RECIPE_OFF = {"max_tokens": None, "warmup_tokens": 0, "decay_after_tokens": None, "half_life_tokens": None,
              "cooldown": 0.0, "clipnorm": None, "ema": None, "unigram_bias": False, "precision": "float32"}


def params(**changes) -> dict:
    import yaml
    from conftest import ROOT
    return yaml.safe_load((ROOT / "params.yaml").read_text())["train-lstm"] | changes


@pytest.mark.parametrize("changes, named", [({"cooldown": 0.2, "max_tokens": None}, "train-lstm.max_tokens"),
                                            ({"decay_after_tokens": 1000, "half_life_tokens": None},
                                             "train-lstm.half_life_tokens")])
def test_params_that_only_work_together_are_one_clear_error(changes, named):
    with pytest.raises(UserError, match=named):
        training.check_recipe(params(**changes), "train-lstm")
    training.check_recipe(params(), "train-lstm")  # the defaults hold together


def test_the_schedule_warms_up_holds_halves_and_cools_down_by_tokens():
    schedule = lstm.TokenSchedule(1.0, tokens_per_step=100, warmup=400, decay_after=1000, half_life=500,
                                  cooldown=0.5, budget=4000)
    rate = lambda step: float(schedule(step))  # noqa: E731  (step = updates made before this one)
    assert [rate(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rate(10) == pytest.approx(1.0)                 # 1,000 tokens: the hold ends
    assert rate(15) == pytest.approx(0.5)                 # one half-life later
    assert rate(30) == pytest.approx(0.5 ** 4 * 0.5)      # 3,000 tokens: halfway through the cooldown too
    assert rate(40) == 0.0 and rate(45) == 0.0            # the budget is spent
    assert float(lstm.TokenSchedule(3e-3, 64)(10**6)) == pytest.approx(3e-3)  # no schedule: constant


def test_the_unigram_bias_is_the_log_share_of_each_training_token(tmp_path):
    write_npy(tmp_path / "train.npy", np.array([0, 1, 1, 1, 2], np.uint8))
    chars = {"tokens": MappedVector.open(tmp_path / "train.npy")}  # read from the map a piece at a time
    vocab = {"tokens": ["a", "b", "c", "d"]}
    shares = np.exp(training.unigram_log_shares(chars, vocab))
    assert shares == pytest.approx(np.array([2, 4, 2, 1]) / 9)  # one more of each: no log of 0
    write_npy(tmp_path / "long.npy", np.concatenate([np.full(2 ** 20, 3, np.uint8), [0, 1, 1, 1, 2]]))
    long = {"tokens": MappedVector.open(tmp_path / "long.npy")}  # two pieces of a megabyte: counts added up
    assert np.exp(training.unigram_log_shares(long, vocab)) == pytest.approx(np.array([2, 4, 2, 2 ** 20 + 1]) / (2 ** 20 + 9))
    rows = {"rows": np.array([[1, 2, 3, 0], [1, 3, 0, 0]])}  # targets are row[1:]; 0 pads
    words = {"tokens": ["<pad>", "<s>", "x", "</s>"], "pad": "<pad>"}
    assert np.exp(training.unigram_log_shares(rows, words)) == pytest.approx(np.array([1, 1, 2, 3]) / 7)


def test_the_plan_counts_steps_and_the_token_budget():
    train = {"windows": 95, "step": 10, "seq_length": 20}
    plan = training.plan({"batch_size": 32, "max_tokens": 5000}, train, {"tokens": ["a"]})
    assert plan == training.Plan(steps_per_epoch=3, tokens_per_step=95 * 20 / 3, budget_steps=8)


def test_a_resumed_auto_run_keeps_the_precision_its_checkpoint_chose(tmp_path):
    fingerprint = {"params": {"units": 8, "precision": "auto"}, "data": {"a": "1"}}
    (tmp_path / "fingerprint.json").write_text(json.dumps({**fingerprint, "params": {"units": 8,
                                                                                     "precision": "mixed_bfloat16"}}))
    assert training.precision_of_checkpoint(tmp_path, fingerprint) == "mixed_bfloat16"
    other = {**fingerprint, "params": {"units": 9, "precision": "auto"}}
    assert training.precision_of_checkpoint(tmp_path, other) is None
    assert training.precision_of_checkpoint(tmp_path / "none", fingerprint) is None


# --- on real training --------------------------------------------------------------------------

def train_here(folder, monkeypatch, **changes):
    """train-lstm char on the data stages' output in `folder`, in this process; its run.json."""
    import train_lstm
    write_params(folder, **{**TINY, "train_lstm": {**TINY["train_lstm"], **changes}})
    monkeypatch.chdir(folder)
    train_lstm.main()
    return json.loads((folder / "metrics/train/char/run.json").read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipe")
    run_data_stages(folder, n_words=1500)
    return folder


def saved_model_loss(folder) -> float:
    """The saved model's loss on the validation windows, as train-lstm scores them."""
    from lstm_textgen.branches import branch_spec, load_split
    from lstm_textgen.vocab import read_vocab
    old = os.getcwd()
    os.chdir(folder)
    try:
        spec = branch_spec("char")
        vocab = read_vocab(spec["vocab"])
        val = load_split(spec["val"], vocab, "window")
        model = lstm.load_model(spec["model"])
    finally:
        os.chdir(old)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return float(model.evaluate(lstm.split_dataset(val, vocab, 32), verbose=0))


def test_the_saved_model_is_the_weight_average_that_was_scored(data, monkeypatch):
    """With `ema`, validation, early stopping and the saved files all use the moving average: the
    saved model scores exactly the reported best_val_loss. Trained under mixed bfloat16 with
    CpuLSTM, and saved as Keras' own LSTM in float32."""
    recipe = {**RECIPE_OFF, "epochs": 3, "precision": "mixed_bfloat16", "clipnorm": 1.0, "unigram_bias": True}
    scores = train_here(data, monkeypatch, **{**recipe, "ema": 0.9})
    assert scores["precision"] == "mixed_bfloat16" and scores["lstm_kernel"] == "cpu_loop"
    assert saved_model_loss(data) == pytest.approx(scores["best_val_loss"], abs=2e-4)
    with zipfile.ZipFile(data / "data/models/char.keras") as archive:
        config = archive.read("config.json").decode()
    assert '"class_name": "LSTM"' in config and "CpuLSTM" not in config and "bfloat16" not in config
    raw = train_here(data, monkeypatch, **recipe)
    assert abs(raw["best_val_loss"] - scores["best_val_loss"]) > 1e-3  # the average is not the raw weights


def test_max_tokens_ends_training_mid_epoch_and_the_cooldown_with_it(data, monkeypatch):
    scores = train_here(data, monkeypatch, **{**RECIPE_OFF, "epochs": 5, "max_tokens": 20_000, "cooldown": 0.5})
    per_step = TINY["train_lstm"]["batch_size"] * TINY["window"]["seq_length"]
    per_epoch = json.loads((data / "data/windows/windows.json").read_text())["train"]["windows"] * \
        TINY["window"]["seq_length"]
    assert scores["tokens_trained"] == pytest.approx(20_000, abs=per_step)
    assert scores["epochs_run"] == -(-20_000 // per_epoch) < 5  # the last epoch cut short
    table = (data / "metrics/train/char/loss.tsv").read_text().splitlines()
    assert len(table) == 1 + scores["epochs_run"]  # the cut epoch was validated and logged


def test_precision_auto_times_both_where_bfloat16_can_pay_and_records_its_choice(data, monkeypatch):
    monkeypatch.setattr(lstm, "bfloat16_native", lambda: True)
    monkeypatch.setattr(training, "PRECISION_SECONDS", 0.5)
    scores = train_here(data, monkeypatch, **{**RECIPE_OFF, "precision": "auto"})
    trials = scores["tokens_per_second_float32_trial"], scores["tokens_per_second_mixed_bfloat16_trial"]
    assert min(trials) > 0
    faster = trials[1] >= training.PRECISION_MARGIN * trials[0]
    assert scores["precision"] == ("mixed_bfloat16" if faster else "float32")
    monkeypatch.setattr(lstm, "bfloat16_native", lambda: False)
    scores = train_here(data, monkeypatch, **{**RECIPE_OFF, "precision": "auto"})
    assert scores["precision"] == "float32" and "tokens_per_second_float32_trial" not in scores
