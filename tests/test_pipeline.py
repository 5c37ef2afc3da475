"""The whole pipeline through the real `dvc` CLI, in a temporary git repo, on tiny params."""

import json
import re

import yaml

from conftest import TINY, sh

CHAR = ["download-gutenberg", "strip-boilerplate", "encode-vocab", "window", "train-lstm", "sample"]
HEADLINES = ["tokenize-headlines", "train-lstm-headlines", "sample-headlines"]


def repro(repo, env, *targets) -> list[str]:
    """Run `dvc repro` and return the stages it ran, in order."""
    out = sh(["dvc", "repro", *targets], repo, env).stdout
    ran = re.findall(r"Running stage '([^']+)'", out)
    skipped = re.findall(r"Stage '([^']+)' didn't change, skipping", out)
    if not targets:
        assert sorted(ran + skipped) == sorted(CHAR + HEADLINES), out  # every stage was run or skipped
    return ran


def set_param(repo, section, key, value):
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_repro_runs_everything_once_then_only_what_a_change_touches(dvc_project):
    repo, env = dvc_project
    ran = repro(repo, env)
    assert [s for s in ran if s in CHAR] == CHAR and [s for s in ran if s in HEADLINES] == HEADLINES
    assert (repo / "data/models/char.keras").is_file() and (repo / "data/models/headlines.keras").is_file()
    samples = (repo / "metrics/sample/char/samples.txt").read_text()
    assert samples.count("generated:\n") == 2
    headlines = (repo / "metrics/sample/headlines/samples.txt").read_text().splitlines()
    assert len(headlines) == len(TINY["sample_headlines"]["seeds"])  # one title-cased line per seed
    assert headlines[0].startswith("Alice") and headlines[1].startswith("The Queen")

    assert repro(repo, env) == []
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout

    shown = sh(["dvc", "metrics", "show", "--json"], repo, env).stdout  # tests/test_metrics_shown.py: exactly
    for name in ("char", "headlines", "val_loss", "val_bits_per_char", "val_bits_per_word", "known_word_share",
                 "copied_share"):
        assert f'"{name}"' in shown, name
    plots = sh(["dvc", "plots", "show", "--json"], repo, env).stdout
    assert "Loss per epoch, char branch" in plots and "Loss per epoch, headlines branch" in plots

    set_param(repo, "window", "seq_length", 16)
    assert repro(repo, env) == ["window", "train-lstm", "sample"]

    set_param(repo, "sample", "temperature", 1.2)
    assert repro(repo, env) == ["sample"]
    assert (repo / "metrics/sample/char/samples.txt").read_text() != samples
    provenance = json.loads((repo / "metrics/sample/char/provenance.json").read_text())
    assert provenance["params"]["sample"]["temperature"] == 1.2

    set_param(repo, "train-lstm-headlines", "units", 12)
    assert repro(repo, env) == ["train-lstm-headlines", "sample-headlines"]

    set_param(repo, "sample-headlines", "temperature", 1.5)
    set_param(repo, "sample", "temperature", 0.5)
    assert repro(repo, env, "sample-headlines") == ["sample-headlines"]  # one branch's stage alone
    assert repro(repo, env, "sample") == ["sample"]
