"""A failed run costs nothing: whatever stops a stage (a bad param, a failed download, a refused
input, a kill), its previous outputs stay where they were and dvc.lock still describes them, so
undoing the mistake leaves the pipeline up to date, with nothing to retrain."""

import hashlib
import os
import re
import signal
import subprocess
import time

import pytest
import yaml

from conftest import sh
from test_pipeline import set_param

OUTPUTS = ["data/models/char.keras", "data/models/char.npz", "metrics/train/char/metrics.json",
           "metrics/train/char/run.json", "metrics/train/char/plots/metrics/eval/loss.tsv",
           "metrics/sample/char/samples.txt", "metrics/sample/char/provenance.json", "data/raw/pg1.txt",
           "data/raw/manifest.json"]


def snapshot(repo) -> dict:
    return {path: hashlib.sha256((repo / path).read_bytes()).hexdigest() for path in OUTPUTS} | {
        "dvc.lock": (repo / "dvc.lock").read_text()}


def param(repo, section, key):
    return yaml.safe_load((repo / "params.yaml").read_text())[section][key]


def assert_nothing_to_rerun(repo, env):
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout
    out = sh(["dvc", "repro"], repo, env).stdout
    assert "Running stage" not in out, out


@pytest.fixture(scope="module")
def built(tmp_path_factory, reproduced_project, session_server):
    repo, env = reproduced_project(tmp_path_factory.mktemp("failures") / "repo")
    return repo, env, session_server


@pytest.mark.parametrize("section, key, bad, says", [
    ("train-lstm", "epochs", -1, "train-lstm.epochs = -1 must be a whole number > 0"),
    ("sample", "seed_text", "\u00a7 alice", "characters the model never saw"),
    ("download-gutenberg", "mirrors", ["{server}/nowhere/pg{{id}}.txt"], "could not download Gutenberg book 1"),
], ids=["train-lstm: a bad param", "sample: a bad seed text", "download-gutenberg: every mirror failing"])
def test_a_failed_stage_keeps_its_last_good_outputs(built, section, key, bad, says):
    repo, env, server = built
    before, good = snapshot(repo), param(repo, section, key)
    set_param(repo, section, key, [m.format(server=server.url) for m in bad] if isinstance(bad, list) else bad)
    failed = sh(["dvc", "repro"], repo, env, check=False)
    assert failed.returncode != 0 and says in failed.stderr + failed.stdout, failed.stderr
    assert snapshot(repo) == before  # every output, and dvc.lock, as the last good run left them
    set_param(repo, section, key, good)
    assert_nothing_to_rerun(repo, env)


def edit_section(repo, section, edit) -> str:
    """Apply `edit` to a params.yaml section (a dict); return the file as it was."""
    text = (repo / "params.yaml").read_text()
    params = yaml.safe_load(text)
    edit(params[section])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return text


@pytest.mark.parametrize("edit, says", [
    (lambda s: s.update(unitz=64), "train-lstm.unitz is not a known param (did you mean 'units'?)"),
    (lambda s: s.update(unitz=s.pop("units")), "train-lstm.units is missing"),
], ids=["a key added beside the right one", "a key renamed"])
def test_a_params_typo_is_named_even_when_nothing_else_would_rerun(built, edit, says):
    """Each stage depends on its whole params section: a mistyped key reruns the stage, whose own
    check names it, instead of DVC skipping every stage or saying only that a param is missing."""
    repo, env, _ = built
    before = snapshot(repo)
    original = edit_section(repo, "train-lstm", edit)
    failed = sh(["dvc", "repro"], repo, env, check=False)
    assert failed.returncode != 0 and says in failed.stderr, failed.stderr
    assert "train-lstm.unitz is not a known param (did you mean 'units'?)" in failed.stderr
    assert "Running stage 'train-lstm'" in failed.stdout and "Running stage 'window'" not in failed.stdout
    assert snapshot(repo) == before
    (repo / "params.yaml").write_text(original)
    assert_nothing_to_rerun(repo, env)


def test_changing_seq_length_reruns_only_window_and_what_follows(reproduced_project, tmp_path):
    """With each stage depending on its whole params section, the promise still holds."""
    repo, env = reproduced_project(tmp_path / "repo")
    set_param(repo, "window", "seq_length", param(repo, "window", "seq_length") - 2)
    assert set(yaml.safe_load(sh(["dvc", "status", "--json"], repo, env).stdout)) == {"window"}
    ran = re.findall(r"Running stage '([^']+)'", sh(["dvc", "repro"], repo, env).stdout)
    assert sorted(ran) == ["sample", "train-lstm", "window"]


def test_a_killed_training_run_keeps_the_last_model(built):
    repo, env, _ = built
    before, good = snapshot(repo), param(repo, "train-lstm", "epochs")
    set_param(repo, "train-lstm", "epochs", 50)
    proc = subprocess.Popen(["dvc", "repro", "train-lstm"], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    backup = repo / "data/checkpoints/char/backup/training_metadata.json"
    deadline = time.monotonic() + 120
    while not backup.exists():  # an epoch done: the old outputs would be long gone without persist
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snapshot(repo) == before
    set_param(repo, "train-lstm", "epochs", good)
    assert_nothing_to_rerun(repo, env)
