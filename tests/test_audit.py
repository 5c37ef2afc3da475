"""Auditing which params produced which sample text, from dvc.lock and DVC experiments."""

import hashlib
import json

import pytest

from conftest import sh

SAMPLE = "metrics/sample/char/samples.txt"


def audit(repo, env, *args, check=True):
    return sh(["python", "-m", "lstm_textgen", "audit", *args], repo, env, check=check)


@pytest.fixture(scope="module")
def experiments(tmp_path_factory, reproduced_project):
    """The tiny project committed, then two experiments with different params (shared by the
    tests here; the last one edits the workspace)."""
    repo, env = reproduced_project(tmp_path_factory.mktemp("audit") / "repo")
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "baseline"], repo, env)
    sh(["dvc", "exp", "run", "-n", "cold", "-S", "sample.temperature=0.3"], repo, env)
    sh(["dvc", "exp", "run", "-n", "small", "-S", "train-lstm.units=12", "-S", "sample.temperature=1.5"], repo, env)
    return repo, env


def test_each_experiments_sample_is_attributed_to_its_params(experiments):
    repo, env = experiments
    reports = {name: json.loads(audit(repo, env, SAMPLE, "--rev", name, "--json").stdout) for name in ("cold", "small")}
    baseline = json.loads(audit(repo, env, SAMPLE, "--rev", "HEAD", "--json").stdout)
    cold, small = reports["cold"], reports["small"]
    assert cold["stage"] == "sample" and cold["code_version"]["experiment"] == "cold"
    assert cold["stages"]["sample"]["params"]["sample.temperature"] == 0.3
    assert small["stages"]["sample"]["params"]["sample.temperature"] == 1.5
    assert cold["stages"]["train-lstm"]["params"]["train-lstm.units"] == 16
    assert small["stages"]["train-lstm"]["params"]["train-lstm.units"] == 12
    assert cold["stages"]["window"]["params"]["window.seq_length"] == 20
    assert list(cold["stages"]) == ["download-gutenberg", "strip-boilerplate", "encode-vocab", "window",
                                    "train-lstm", "sample"]  # the char branch only, upstream first
    model = lambda r: r["stages"]["train-lstm"]["outs"]["data/models/char.keras"]  # noqa: E731
    assert model(cold) == model(baseline) != model(small)  # "cold" reused the baseline's model
    assert cold["md5"] != small["md5"] != baseline["md5"]
    assert set(cold["model_score"]) == {"best_val_loss", "best_val_bits_per_char", "best_val_perplexity"}
    assert cold["model_score"] != small["model_score"]
    text = audit(repo, env, SAMPLE, "--rev", "small").stdout
    assert "param sample.temperature = 1.5" in text and "param train-lstm.units = 12" in text
    assert "model validation score: best_val_loss" in text
    assert cold["trained_with"]["precision"] == "float32" and cold["trained_with"]["lstm_kernel"] == "cpu_loop"
    assert "trained with: precision float32, device CPU, lstm_kernel cpu_loop, tokens_trained " in text


def test_exp_show_lists_the_params_and_scores_that_matter(experiments):
    repo, env = experiments
    table = sh(["dvc", "exp", "show", "--csv"], repo, env).stdout.splitlines()
    header = table[0].split(",")
    for column in ("sample.temperature", "train-lstm.units", "window.seq_length", "char.val_loss",
                   "char.val_bits_per_char", "char.known_word_share", "char.distinct_3", "headlines.val_loss"):
        assert column in header, column
    assert not [column for column in header if column.startswith("metrics/")]  # no column named after its file
    assert sum(row.startswith(("cold,", "small,")) for row in table) == 2


def test_edited_or_unrecorded_files_are_refused(experiments):
    repo, env = experiments
    sh(["dvc", "exp", "apply", "small"], repo, env)
    assert audit(repo, env, SAMPLE).returncode == 0
    with open(repo / SAMPLE, "a") as f:
        f.write("one more line\n")
    proc = audit(repo, env, SAMPLE, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {SAMPLE} was edited after the run that dvc.lock records for stage sample")
    (repo / "metrics/sample/char/mine.txt").write_text("written by hand\n")
    proc = audit(repo, env, "metrics/sample/char/mine.txt", check=False)
    assert proc.returncode == 1
    assert "metrics/sample/char/mine.txt was produced by no recorded run" in proc.stderr
    proc = audit(repo, env, SAMPLE, "--rev", "nosuchexp", check=False)
    assert proc.returncode == 1 and "'nosuchexp' is neither a git revision nor an experiment name" in proc.stderr


def test_a_model_retrained_without_resampling_is_not_presented_as_the_texts(reproduced_project, tmp_path):
    """The README's own pattern: retrain with other params but do not resample. The sample text
    was written by the model before; the audit says so, naming both hashes, and shows neither
    the new params nor the new model's score as the text's; in the workspace, in the experiment,
    and at a commit that holds the stale state; and not once the sample is made again."""
    repo, env = reproduced_project(tmp_path / "repo")
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "baseline"], repo, env)
    before = json.loads(audit(repo, env, SAMPLE, "--json").stdout)
    assert before["chain"] == {"intact": True, "broken": [], "unverified_stages": []}
    old_model = before["stages"]["train-lstm"]["outs"]["data/models/char.npz"]
    sh(["dvc", "exp", "run", "-n", "tiny32", "-S", "train-lstm.units=32", "train-lstm"], repo, env)
    assert "changed deps" in sh(["dvc", "status", "sample"], repo, env).stdout
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "retrained, not resampled"], repo, env)
    for rev in ([], ["--rev", "tiny32"], ["--rev", "HEAD"]):
        report = json.loads(audit(repo, env, SAMPLE, *rev, "--json").stdout)
        link, = report["chain"]["broken"]
        assert link["stage"] == "sample" and link["input"] == "data/models/char.npz"
        assert link["input_md5"] == old_model != link["upstream_md5"]
        assert link["upstream_stage"] == "train-lstm" and not report["chain"]["intact"]
        assert report["chain"]["unverified_stages"] == ["train-lstm"]
        assert "train-lstm" not in report["stages"] and "model_score" not in report and "trained_with" not in report
        assert report["stages"]["window"]["params"]["window.seq_length"] == 20  # the links that hold are shown
        text = audit(repo, env, SAMPLE, *rev).stdout
        assert f"WARNING: sample made its outputs from data/models/char.npz md5 {old_model}" in text
        assert link["upstream_md5"] in text and "units = 32" not in text and "units = 16" not in text
    sh(["dvc", "repro"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "resampled"], repo, env)
    after = json.loads(audit(repo, env, SAMPLE, "--json").stdout)
    assert after["chain"]["intact"] and after["stages"]["train-lstm"]["params"]["train-lstm.units"] == 32
    stale = json.loads(audit(repo, env, SAMPLE, "--rev", "HEAD~1", "--json").stdout)
    assert not stale["chain"]["intact"]  # the past commit still tells the truth about itself


def test_generate_json_names_a_model_whose_windows_changed_since(reproduced_project, tmp_path):
    """generate --json's provenance is the same audit, of the model it loads: windows cut again
    (in an experiment that ran window only) break the model's chain."""
    repo, env = reproduced_project(tmp_path / "repo")
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "baseline"], repo, env)
    sh(["dvc", "exp", "run", "-n", "step7", "-S", "window.step=7", "window"], repo, env)
    out = sh(["python", "-m", "lstm_textgen", "generate", "--rev", "step7", "--json", "--seed", "1", "--length", "5",
              "alice"], repo, env).stdout
    provenance = json.loads(out)["provenance"]
    assert {link["stage"] for link in provenance["chain"]["broken"]} == {"train-lstm"}
    assert {link["input"] for link in provenance["chain"]["broken"]} == {"data/windows"}
    # only window's record is another run's: the vocabulary the model used is still encode-vocab's
    assert provenance["chain"]["unverified_stages"] == ["window"]
    assert "window" not in provenance["stages"] and "encode-vocab" in provenance["stages"]


RECORD = {"best_val_loss": 1.51234, "best_val_bits_per_char": 2.18187, "best_val_perplexity": 4.53696,
          "best_epoch": 3, "train_seconds": 12.5, "device": "CPU", "lstm_kernel": "cpu_loop", "precision": "float32",
          "tokens_trained": 9000}


@pytest.mark.parametrize("files", [
    {"metrics/train/char/run.json": RECORD,  # today: the headline in metrics.json, the record in run.json
     "metrics/train/char/metrics.json": {"char": {"val_loss": 1.5123, "val_bits_per_char": 2.1819,
                                                  "val_perplexity": 4.537}}},
    {"metrics/train/char/metrics.json": {"train": {"loss": 1.4}, "step": 2, **RECORD}},  # a run committed before
], ids=["run.json", "before run.json"])
def test_the_model_score_is_read_from_the_runs_whole_record(files):
    from lstm_textgen.audit import audit

    def read(path):
        if path not in files:  # as read_bytes does, at a commit, for a file inside an output it lacks
            raise AssertionError(f"read {path}")
        return json.dumps(files[path]).encode()

    text = b"generated\n"
    lock = {"stages": {
        "train-lstm": {"cmd": "python -m stages.train_lstm char", "outs": [
            {"path": "data/models/char.npz", "md5": "1"}, {"path": "metrics/train/char", "md5": "2.dir"}]},
        "sample": {"cmd": "python -m stages.sample char", "deps": [{"path": "data/models/char.npz", "md5": "1"}],
                   "outs": [{"path": SAMPLE, "md5": hashlib.md5(text).hexdigest()}]}}}
    report = audit(SAMPLE, lock, text, read)
    assert report["model_score"] == {k: v for k, v in RECORD.items() if k.startswith("best_val")}
    assert report["trained_with"] == {"precision": "float32", "device": "CPU", "lstm_kernel": "cpu_loop",
                                      "tokens_trained": 9000}
