"""The whole pipeline through the real `dvc` CLI, in a temporary git repo, on tiny params."""

import json
import re

import yaml

from conftest import sh

STAGES = ["download-gutenberg", "strip-boilerplate", "encode-vocab", "window", "train-lstm", "sample"]


def repro(repo, env, *args) -> list[str]:
    """Run `dvc repro` and return the stages it ran, in order."""
    out = sh(["dvc", "repro", *args], repo, env).stdout
    ran = re.findall(r"Running stage '([^']+)'", out)
    skipped = re.findall(r"Stage '([^']+)' didn't change, skipping", out)
    assert sorted(ran + skipped) == sorted(STAGES), out  # every stage was either run or skipped
    return ran


def set_param(repo, section, key, value):
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_repro_runs_everything_once_then_only_what_a_change_touches(dvc_project):
    repo, env = dvc_project
    assert repro(repo, env) == STAGES
    assert (repo / "data/models/char.keras").is_file()
    samples = (repo / "metrics/sample/char/samples.txt").read_text()
    assert samples.count("generated:\n") == 2

    assert repro(repo, env) == []
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout

    metrics = json.loads(sh(["dvc", "metrics", "show", "--json"], repo, env).stdout)
    shown = json.dumps(metrics)
    for name in ("best_val_loss", "best_val_bits_per_char", "known_word_share", "vocab_size", "characters_removed"):
        assert f'"{name}"' in shown
    plots = sh(["dvc", "plots", "show", "--json"], repo, env).stdout
    assert "Loss per epoch" in plots

    set_param(repo, "window", "seq_length", 16)
    assert repro(repo, env) == ["window", "train-lstm", "sample"]

    set_param(repo, "sample", "temperature", 1.2)
    assert repro(repo, env) == ["sample"]
    assert (repo / "metrics/sample/char/samples.txt").read_text() != samples
    assert json.loads((repo / "metrics/sample/char/provenance.json").read_text())["params"]["sample"][
        "temperature"] == 1.2
