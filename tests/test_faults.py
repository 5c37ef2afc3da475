"""Faults and bad input: corrupt or mismatched artifacts, hostile models, stalled downloads,
stages killed at random moments, and properties of the pure functions (hypothesis)."""

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lstm_textgen import branches
from lstm_textgen import download
from lstm_textgen import files
from lstm_textgen import vocab as vocabulary
from lstm_textgen.errors import UserError
from lstm_textgen.cleaning import clean_headline
from conftest import ROOT, TINY, book_body, gutenberg_file, headlines_csv, write_params
from lstm_textgen import gutenberg
from lstm_textgen import headlines as hl

# --- corrupt or mismatched artifacts ----------------------------------------------------------


def test_a_truncated_array_is_named_with_its_fix(tmp_path):
    path = tmp_path / "windows/train.npy"
    files.write_npy(path, np.arange(100, dtype=np.uint8))
    files.write_json(tmp_path / "windows/windows.json",
                     {"seq_length": 10, "train": {"step": 10, "windows": 9}})
    vocab = {"tokens": [chr(i) for i in range(100)]}
    assert branches.load_split(path, vocab, "window")["seq_length"] == 10
    path.write_bytes(path.read_bytes()[:150])
    with pytest.raises(UserError, match=rf"cannot read {path} .*run `dvc checkout {path.parent}` or `dvc repro -f window`"):
        branches.load_split(path, vocab, "window")


def test_rows_from_another_vocabulary_are_refused(tmp_path):
    path = tmp_path / "val.npz"
    files.write_npz(path, rows=np.arange(60, dtype=np.uint8).reshape(6, 10))
    with pytest.raises(UserError, match=r"token ids beyond the vocabulary's 40 tokens.*dvc repro -f tokenize-headlines"):
        branches.load_split(path, {"tokens": ["x"] * 40}, "tokenize-headlines")
    path.write_bytes(path.read_bytes()[:150])
    with pytest.raises(UserError, match=rf"cannot read {path} .*run `dvc checkout {path}` or `dvc repro -f tok"):
        branches.load_split(path, {"tokens": ["x"] * 40}, "tokenize-headlines")


def test_models_that_fail_to_load_or_carry_code_are_refused(tmp_path):
    import keras
    from lstm_textgen import model as lstm
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    with pytest.raises(UserError, match=rf"cannot load model {junk} .*`dvc checkout {junk}` or `dvc repro -f "
                                        r"train-lstm`"):
        lstm.load_model(junk)
    hostile = tmp_path / "hostile.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(2)]).save(hostile)
    with pytest.raises(UserError, match=rf"refusing {hostile}: it carries serialized Python code.*"
                                        r"`dvc repro -f train-lstm-headlines`"):
        lstm.load_model(hostile, "train-lstm-headlines")


# --- downloads ------------------------------------------------------------------------------

def test_a_stalled_download_times_out_and_leaves_nothing(server, tmp_path):
    server.files["/pg1.txt"] = b"x" * 1000
    server.faults["/pg1.txt"] = ["stall", "stall"]
    started = time.monotonic()
    with pytest.raises(UserError, match=r"pg1.txt: (ReadTimeout|ConnectionError).*\(after 2 attempts\)"):
        download.fetch([server.url + "/pg1.txt"], tmp_path / "pg1.txt", "book 1", attempts=2, timeout=0.5, backoff=0)
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []


# --- stages killed at random moments --------------------------------------------------------

DATA_STAGES = {  # script: the outputs it owns
    "download_gutenberg": ["data/raw/pg1.txt", "data/raw/manifest.json"],
    "strip_boilerplate": ["data/clean/corpus.txt", "metrics/corpus.json"],
    "encode_vocab": ["data/vocab/chars.json", "data/vocab/ids.npy", "metrics/vocab.json"],
    "window": ["data/windows/train.npy", "data/windows/val.npy", "data/windows/windows.json"],
    "tokenize_headlines": ["data/headlines/train.npz", "data/headlines/vocab.json", "metrics/headlines.json"],
}


def test_data_stages_killed_at_random_moments_leave_whole_outputs_or_none(tmp_path):
    """Each stage, killed at random moments, leaves each output as the complete run wrote it,
    or absent (as DVC leaves it before a run); never a truncated file."""
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror/pg1.txt").write_bytes(gutenberg_file(book_body(20_000)))
    shutil.copy(tmp_path / "mirror/pg1.txt", tmp_path / "mirror/pg2.txt")
    (tmp_path / "h.csv").write_bytes(headlines_csv(3000))
    write_params(tmp_path, **{**TINY, "download_gutenberg": {"book_ids": [1]},
                              "tokenize_headlines": {**TINY["tokenize_headlines"], "source": "h.csv"}})
    env = {"PATH": "/usr/bin:/bin", "GUTENBERG_MIRROR": str(tmp_path / "mirror")}
    rng = random.Random(0)
    for stage, outs in DATA_STAGES.items():
        cmd = [sys.executable, str(ROOT / f"stages/{stage}.py")]
        started = time.monotonic()
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
        duration = time.monotonic() - started
        complete = {out: (tmp_path / out).read_bytes() for out in outs}
        for trial in range(6):
            if trial % 2:  # as DVC runs a stage: its outputs removed first
                for out in outs:
                    (tmp_path / out).unlink(missing_ok=True)
            proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0, duration))
            proc.kill()
            proc.wait()
            for out in outs:
                path = tmp_path / out
                assert not path.exists() or path.read_bytes() == complete[out], f"{stage}: {out} is half-written"
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)  # and it still runs after


# --- properties -----------------------------------------------------------------------------

book_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(body=book_text, legacy=st.booleans())
def test_stripping_never_keeps_markers_or_license_and_is_idempotent(body, legacy):
    stripped = gutenberg.strip_gutenberg(gutenberg_file(body, legacy=legacy).decode("utf-8"))
    for line in stripped.splitlines():
        assert not gutenberg.START.match(line) and not gutenberg.END.match(line)
    assert "FULL PROJECT GUTENBERG LICENSE" not in stripped and "Updated editions" not in stripped
    assert gutenberg.strip_gutenberg(gutenberg_file(stripped, legacy=legacy).decode("utf-8")) == stripped


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=200), extra=st.text(max_size=20))
def test_encode_decode_round_trips_over_the_vocabulary(text, extra):
    vocab = vocabulary.build_char_vocab(text + extra)
    assert vocabulary.decode_chars(vocabulary.encode_chars(text, vocab), vocab) == text


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="ab'’ \n\t1é_-", max_size=120), chunk=st.integers(1, 40),
       wanted=st.sets(st.sampled_from(["a", "b", "ab", "ba", "a'b", "aé", "zz"])))
def test_the_known_words_of_a_text_read_in_pieces_are_those_of_the_whole(text, chunk, wanted):
    """The sample stage's known words, decoded a piece at a time so that a shelf's text is never
    one Python string: the same set, wherever the pieces cut a word."""
    from lstm_textgen.text_measures import known_words, words
    vocab = vocabulary.build_char_vocab(text + "a")
    ids = vocabulary.encode_chars(text, vocab)
    pieces = [ids[i:i + chunk] for i in range(0, len(ids), chunk)]
    assert known_words(pieces, vocab, wanted) == wanted & set(words(text))
    assert known_words(pieces, vocab, set(words(text))) == set(words(text))  # every word of the text, found


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=80), switches=st.fixed_dictionaries(
    {k: st.booleans() for k in ("repair_encoding", "ascii_fold", "lowercase", "strip_punctuation")}))
def test_headline_cleaning_never_crashes_and_rows_are_never_empty(raw, switches):
    cleaned, _ = clean_headline(raw, **switches)
    assert cleaned == cleaned.strip() and "  " not in cleaned
    if cleaned:  # the stage drops headlines that clean down to nothing; every other one gives a row
        words = [cleaned.split()]
        vocab = hl.build_word_vocab(words, 50, switches)
        rows, _ = hl.headline_rows(words, vocab, max_length=8)
        assert (rows[0] != vocab["tokens"].index("<pad>")).sum() >= 2 or len(words[0]) > 8


def test_a_base_model_carrying_code_is_refused_naming_only_files_that_exist(tmp_path, monkeypatch):
    """Refusing a Lambda base model: `dvc update <it>.dvc` is suggested only when that .dvc file
    exists (the model came by `dvc import`)."""
    import keras
    from lstm_textgen import training
    monkeypatch.chdir(tmp_path)
    hostile = Path("data/base/model.keras")
    hostile.parent.mkdir(parents=True)
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(2)]).save(hostile)
    params = {"layers": 1, "units": 4, "embedding_dim": 2, "dropout": 0.0, "learning_rate": 0.01, "seed": 1,
              "distribute": "one_device"}
    vocab, spec, base = {"tokens": list("abc")}, {"train_stage": "train-lstm"}, {"path": str(hostile)}
    with pytest.raises(UserError) as err:
        training.set_up(params, vocab, {}, spec, "char", base)
    assert "refusing data/base/model.keras" in str(err.value) and ".dvc" not in str(err.value)
    assert "replace it with a model train-lstm saved" in str(err.value)
    Path(f"{hostile}.dvc").write_text("outs: []\n")
    with pytest.raises(UserError, match=r"bring it in again with `dvc update data/base/model.keras.dvc`"):
        training.set_up(params, vocab, {}, spec, "char", base)


def test_a_corpus_identical_to_its_text_reports_nothing_removed(tmp_path, monkeypatch):
    """A text of your own kept whole: metrics/corpus.json says 0 characters were removed."""
    import strip_boilerplate
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/text-1-notes.txt").write_text("some notes\nof mine\n")
    (tmp_path / "data/raw/manifest.json").write_text(json.dumps([{"text": "notes.txt", "file": "text-1-notes.txt"}]))
    write_params(tmp_path, strip_boilerplate={"lowercase": False})
    strip_boilerplate.main()
    assert (tmp_path / "data/clean/corpus.txt").read_text() == "some notes\nof mine\n"
    assert json.loads((tmp_path / "metrics/corpus.json").read_text())["characters_removed"] == 0
