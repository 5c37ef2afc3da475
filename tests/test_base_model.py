"""Fine-tuning from a base model: encode-vocab's base_vocab, train-lstm's init_from, and the whole
recipe with the real `dvc` CLI: a base trained in one repo, pushed to a local remote, brought
into another with `dvc import`, fine-tuned there and audited back to its pretraining."""

import json
import math
import subprocess
import sys

import pytest
import yaml

import encode_vocab
from conftest import ROOT, book_body, gutenberg_file, make_dvc_project, run_data_stages, sh, write_params
from lstm_textgen.errors import UserError
from test_pipeline import repro, set_param
from lstm_textgen.vocab import build_char_vocab
from lstm_textgen import training

BASE_VOCAB = "data/base/chars.json"
BASE_MODEL = "data/base/model.keras"


def write_base_vocab(folder, text, min_count=1):
    (folder / "data/base").mkdir(parents=True, exist_ok=True)
    vocab = build_char_vocab(text, min_count) | {"cleaning": {"lowercase": True, "ascii_punctuation": False}}
    (folder / BASE_VOCAB).write_text(json.dumps(vocab))
    return vocab


def test_the_base_vocabulary_is_kept_token_for_token_and_outside_characters_are_counted(tmp_path):
    # The base saw no "q" and one "é" (rare: its unknown token); the new book has "queen" in it.
    base = write_base_vocab(tmp_path, book_body(3000, seed=5).lower().replace("q", "") + "é", min_count=2)
    assert base["unknown"] and "é" not in base["tokens"] and "q" not in base["tokens"]
    run_data_stages(tmp_path, 2000, encode_vocab={"base_vocab": BASE_VOCAB})
    corpus = (tmp_path / "data/clean/corpus.txt").read_text()
    vocab = json.loads((tmp_path / "data/vocab/chars.json").read_text())
    assert vocab["tokens"] == base["tokens"] and vocab["unknown"] == base["unknown"]
    assert vocab["base"]["path"] == BASE_VOCAB and len(vocab["base"]["sha256"]) == 64
    metrics = json.loads((tmp_path / "metrics/vocab.json").read_text())
    assert metrics["vocab_size"] == len(base["tokens"])
    outside = [c for c in corpus if c not in base["tokens"]]
    assert metrics["unknown_tokens"] == len(outside) > 0 and metrics["unknown_characters"] == len(set(outside))


def test_a_base_vocabulary_without_an_unknown_token_refuses_new_characters_by_name(tmp_path):
    write_base_vocab(tmp_path, "abc def")  # every character kept: no unknown token
    with pytest.raises(UserError, match=r"characters that the base vocabulary data/base/chars.json lacks, and it "
                                        r"has no unknown token to map them to: '[^']+' \([\d,]+\).*min_count of 2"):
        run_data_stages(tmp_path, 200, encode_vocab={"base_vocab": BASE_VOCAB})
    assert not (tmp_path / "data/vocab/chars.json").exists()


def test_base_paths_outside_data_base_and_missing_files_are_refused(tmp_path, in_tmp):
    (in_tmp / "data/clean").mkdir(parents=True)
    (in_tmp / "data/clean/corpus.txt").write_text("abc\n")
    (in_tmp / "data/clean/cleaning.json").write_text("{}")
    write_params(in_tmp, encode_vocab={"base_vocab": "models/chars.json"})
    with pytest.raises(UserError, match=r"encode-vocab.base_vocab = 'models/chars.json' must be null or a path in "
                                        r"data/base/ ending in .json"):
        encode_vocab.main()
    write_params(in_tmp, encode_vocab={"base_vocab": BASE_VOCAB})
    with pytest.raises(UserError, match=r"base_vocab = 'data/base/chars.json': no such file.*dvc import"):
        encode_vocab.main()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny model saved as train-lstm saves it: 1 LSTM layer of 16 units, embedding 8, 30 tokens."""
    from lstm_textgen import model as lstm
    path = tmp_path_factory.mktemp("base") / "model.keras"
    lstm.build_model(vocab_size=30, embedding_dim=8, units=16, layers=1, dropout=0.0).save(path)
    return path


def test_a_saved_models_shape_is_read_without_tensorflow(saved_model):
    """So that a base model that does not fit is refused in a second, not after TensorFlow loads."""
    assert training.saved_shape(saved_model) == {"vocabulary": 30, "embedding_dim": 8, "units": [16]}
    check = ("import sys; from lstm_textgen import training; "
             f"print(training.saved_shape({str(saved_model)!r})['units']); print('tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["[16]", "False"]


def test_a_base_model_and_vocabulary_from_different_imports_are_refused(tmp_path, saved_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/base").mkdir(parents=True)
    (tmp_path / BASE_MODEL).write_bytes(saved_model.read_bytes())
    for name, rev in ((BASE_MODEL, "a" * 40), (BASE_VOCAB, "b" * 40)):
        (tmp_path / f"{name}.dvc").write_text(yaml.safe_dump({"deps": [{"path": "x", "repo": {
            "url": "../shelf", "rev_lock": rev}}], "outs": [{"path": name.split("/")[-1]}]}))
    vocab = {"tokens": list("abcdefghijklmnopqrstuvwxyz.,!?"), "base": {"path": BASE_VOCAB, "sha256": "0" * 64}}
    params = {"layers": 1, "units": 16, "embedding_dim": 8, "init_from": BASE_MODEL}
    with pytest.raises(UserError, match=rf"come from different places \(../shelf at {'a' * 40}, ../shelf at "
                                        rf"{'b' * 40}\)"):
        training.check_base_model(params, vocab, {"train_stage": "train-lstm", "vocab": "data/vocab/chars.json"})
    (tmp_path / f"{BASE_VOCAB}.dvc").write_text((tmp_path / f"{BASE_MODEL}.dvc").read_text())
    base = training.check_base_model(params, vocab, {"train_stage": "train-lstm", "vocab": "data/vocab/chars.json"})
    assert base["imported_from"] == {"repo": "../shelf", "rev": "a" * 40, "path": "x"}


def test_a_base_model_that_does_not_fit_is_refused_naming_both_sides(saved_model):
    params = {"layers": 2, "units": 32, "embedding_dim": 8}
    problems = training.shape_mismatches(training.saved_shape(saved_model), params, 31, "train-lstm",
                                           "data/vocab/chars.json")
    assert problems == ["the base model has a vocabulary of 30 tokens, but data/vocab/chars.json has 31 tokens",
                        "the base model has 1 LSTM layers of 16 units, but train-lstm.layers = 2, units = 32"]
    assert training.shape_mismatches(training.saved_shape(saved_model), {**params, "layers": 1, "units": 16},
                                       30, "train-lstm", "v") == []


def test_init_from_is_refused_when_the_ids_are_not_the_base_models(tmp_path, saved_model, monkeypatch):
    """Right shape, but encode-vocab made the corpus' own vocabulary: the ids would mean other characters."""
    run_data_stages(tmp_path, 300)
    (tmp_path / "data/base").mkdir()
    (tmp_path / BASE_MODEL).write_bytes(saved_model.read_bytes())
    vocab = json.loads((tmp_path / "data/vocab/chars.json").read_text())
    params = {"layers": 1, "units": 16, "embedding_dim": 8, "init_from": BASE_MODEL}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"init_from is set, but data/vocab/chars.json is this corpus' own "
                                        r"vocabulary.*set encode-vocab.base_vocab"):
        training.check_base_model(params, vocab, {"train_stage": "train-lstm", "vocab": "data/vocab/chars.json"})
    with pytest.raises(UserError, match=r"init_from = 'data/base/other.keras': no such file.*dvc import"):
        training.check_base_model({**params, "init_from": "data/base/other.keras"}, vocab,
                                    {"train_stage": "train-lstm", "vocab": "data/vocab/chars.json"})


# The recipe, as docs/own-text.md gives it, with the real dvc CLI.

def char_stages(repo, env):
    """Reproduce the char branch only (the headlines branch has nothing to do with base models)."""
    return repro(repo, env, "sample")


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory, module_server):
    """The pretraining clone: trained on a plain text of its own (served over HTTP) and a book,
    with min_count 2 so rare characters share an unknown token; committed and pushed."""
    root = tmp_path_factory.mktemp("pretraining")
    repo, env = make_dvc_project(root / "base", module_server)
    # One "ë" in it: rare, so the base vocabulary has an unknown token for what it never saw.
    module_server.files["/shelf/more.txt"] = ("\ufeff" + book_body(6000, seed=11) + "\r\nZoë.\r\n").encode("utf-8")
    sh(["git", "config", "user.name", "test"], repo, env)
    set_param(repo, "download-gutenberg", "texts", [module_server.url + "/shelf/more.txt"])
    set_param(repo, "encode-vocab", "min_count", 2)
    set_param(repo, "train-lstm", "epochs", 3)
    char_stages(repo, env)
    sh(["dvc", "remote", "add", "-d", "shared", str(root / "remote")], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "base model"], repo, env)
    sh(["dvc", "push"], repo, env)
    return repo, env


def test_a_base_model_imported_from_another_repo_is_fine_tuned_and_audited_back(base_repo, tmp_path,
                                                                                  module_server):
    base, env = base_repo
    base_commit = sh(["git", "rev-parse", "HEAD"], base, env).stdout.strip()
    repo, _ = make_dvc_project(tmp_path / "fine", module_server)
    # This book has characters the base never saw often enough: they become its unknown token.
    module_server.files["/pg2.txt"] = gutenberg_file(book_body(3000, seed=2) + "\nCafé 1865 naïve.")
    set_param(repo, "download-gutenberg", "book_ids", [2])
    for src, out in (("data/models/char.keras", BASE_MODEL), ("data/vocab/chars.json", BASE_VOCAB)):
        sh(["dvc", "import", str(base), src, "-o", out], repo, env)
    set_param(repo, "encode-vocab", "base_vocab", BASE_VOCAB)
    set_param(repo, "train-lstm", "init_from", BASE_MODEL)
    assert char_stages(repo, env) == ["download-gutenberg", "strip-boilerplate", "encode-vocab", "window",
                                      "train-lstm", "sample"]
    assert char_stages(repo, env) == []  # the imports are frozen: nothing reruns

    vocab_metrics = json.loads((repo / "metrics/vocab.json").read_text())
    assert vocab_metrics["unknown_tokens"] >= len("é1865ï") and vocab_metrics["unknown_characters"] >= 5
    assert json.loads((repo / "data/vocab/chars.json").read_text())["tokens"] == \
        json.loads((base / "data/vocab/chars.json").read_text())["tokens"]
    trained = json.loads((repo / "metrics/train/char/run.json").read_text())
    # The weights were the base's: before fine-tuning, it already does far better than chance.
    vocab_size = vocab_metrics["vocab_size"]
    assert trained["base_val_loss"] < 0.8 * math.log(vocab_size)
    # And training started from them: one epoch on top of the base scores about as the base did,
    # where a model starting from scratch would still be near chance after one epoch on this little.
    first_epoch = float((repo / "metrics/train/char/loss.tsv").read_text().splitlines()[1].split("\t")[2])
    print(f"base {trained['base_val_loss']:.4f}, first epoch {first_epoch:.4f}, chance {math.log(vocab_size):.4f}")
    assert first_epoch < trained["base_val_loss"] + 0.1
    record = json.loads((repo / "metrics/train/char/base_model.json").read_text())
    assert record["path"] == BASE_MODEL and record["imported_from"] == {
        "repo": str(base), "rev": base_commit, "path": "data/models/char.keras"}
    import hashlib
    assert record["sha256"] == hashlib.sha256((base / "data/models/char.keras").read_bytes()).hexdigest()

    # The sample's audit names the base model and carries the pretraining's own record.
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "fine-tuned"], repo, env)
    report = json.loads(sh(["python", "-m", "lstm_textgen", "audit", "metrics/sample/char/samples.txt", "--json"],
                           repo, env).stdout)
    assert report["stages"]["train-lstm"]["params"]["train-lstm.init_from"] == BASE_MODEL
    pretraining = report["base_model"]["audit"]
    assert pretraining["file"] == "data/models/char.keras" and pretraining["code_version"]["commit"] == base_commit
    assert pretraining["stages"]["encode-vocab"]["params"]["encode-vocab.min_count"] == 2
    assert pretraining["stages"]["download-gutenberg"]["params"]["download-gutenberg.texts"] == [
        module_server.url + "/shelf/more.txt"]
    text = sh(["python", "-m", "lstm_textgen", "audit", "metrics/sample/char/samples.txt"], repo, env).stdout
    assert f"fine-tuned from the base model {BASE_MODEL} (sha256 {record['sha256']})" in text
    assert f"imported from {base} at {base_commit}: data/models/char.keras" in text
    assert "    param encode-vocab.min_count = 2" in text  # the pretraining's record, indented
    generated = json.loads(sh(["python", "-m", "lstm_textgen", "generate", "--json", "--length", "20", "alice"], repo, env).stdout)
    assert generated["provenance"]["base_model"]["sha256"] == record["sha256"]

    # A base of another shape is refused naming both sides, and leaves the model in place.
    model_before = (repo / "data/models/char.keras").read_bytes()
    set_param(repo, "train-lstm", "units", 24)
    failed = sh(["dvc", "repro", "train-lstm"], repo, env, check=False)
    assert failed.returncode != 0
    assert "the base model has 1 LSTM layers of 16 units, but train-lstm.layers = 1, units = 24" in failed.stderr
    assert (repo / "data/models/char.keras").read_bytes() == model_before
