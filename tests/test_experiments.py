"""Experiments on several machines, compared in one place: each clone runs its own experiment and
pushes it (`dvc exp push`: git refs to the shared git remote, models and data to the DVC remote);
a third clone pulls both, compares them, audits each one's sample and generates from each one's
model without retraining. And two queued experiments run at once on one machine."""

import json
import os
import sys
import time

from conftest import sh
from test_remote import s3  # noqa: F401  (the S3 server fixture)

EXPERIMENTS = {"wide": ["-S", "train-lstm.units=24"], "cold": ["-S", "sample.temperature=0.3"]}


def clone(origin, where, env):
    sh(["git", "clone", "-q", "-b", "main", str(origin), str(where)], where.parent, env)
    return where


def audit(repo, env, rev):
    return json.loads(sh([sys.executable, "-m", "lstm_textgen", "audit", "metrics/sample/char/samples.txt", "--rev", rev, "--json"],
                         repo, env).stdout)


def test_two_machines_push_experiments_a_third_compares_audits_and_generates(tmp_path, reproduced_project, s3):
    """The DVC remote on a real S3 API server (tests/test_remote.py round-trips a local-directory
    remote too: what DVC sends does not depend on the kind of remote)."""
    first, env = reproduced_project(tmp_path / "first")
    env = {**env, **{k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}}
    sh(["dvc", "remote", "add", "-d", "team", "s3://textgen/exps"], first, env)
    sh(["dvc", "remote", "modify", "team", "endpointurl", s3[0]], first, env)
    origin = tmp_path / "origin.git"
    sh(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    sh(["git", "add", "-A"], first, env)
    sh(["git", "commit", "-q", "-m", "baseline"], first, env)
    sh(["git", "push", "-q", str(origin), "HEAD:refs/heads/main"], first, env)
    sh(["dvc", "push"], first, env)

    for name, args in EXPERIMENTS.items():  # two machines, one experiment each
        machine = clone(origin, tmp_path / f"machine-{name}", env)
        sh(["dvc", "pull"], machine, env)
        sh(["dvc", "exp", "run", "-n", name, *args], machine, env)
        sh(["dvc", "exp", "push", "origin", name], machine, env)

    third = clone(origin, tmp_path / "third", env)
    sh(["dvc", "exp", "pull", "origin", *EXPERIMENTS], third, env)
    shown = sh(["dvc", "exp", "show", "--json"], third, env).stdout
    assert all(f'"{name}"' in shown for name in EXPERIMENTS)
    wide, cold = audit(third, env, "wide"), audit(third, env, "cold")
    assert wide["stages"]["train-lstm"]["params"]["train-lstm.units"] == 24
    assert wide["stages"]["sample"]["params"]["sample.temperature"] == 0.8
    assert cold["stages"]["train-lstm"]["params"]["train-lstm.units"] == 16
    assert cold["stages"]["sample"]["params"]["sample.temperature"] == 0.3
    for name in EXPERIMENTS:  # each experiment's model, from the DVC remote: nothing retrained here
        out = sh([sys.executable, "-m", "lstm_textgen", "generate", "--rev", name, "--seed", "1", "--length", "10", "alice"],
                 third, env).stdout
        assert out.startswith("alice")
    assert not (third / "data/models/char.npz").exists()  # the workspace untouched


def test_two_queued_experiments_run_at_once_without_colliding(reproduced_project, tmp_path, monkeypatch):
    from lstm_textgen.generate import Model
    repo, env = reproduced_project(tmp_path / "repo")
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "baseline"], repo, env)
    for units in (12, 20):
        sh(["dvc", "exp", "run", "--queue", "-n", f"units-{units}", "-S", f"train-lstm.units={units}"], repo, env)
    sh(["dvc", "queue", "start", "-j", "2"], repo, env)
    try:
        deadline = time.monotonic() + 420
        while True:
            status = sh(["dvc", "queue", "status"], repo, env, timeout=120).stdout
            if "Queued" not in status and "Running" not in status:
                break
            if time.monotonic() > deadline:
                logs = [sh(["dvc", "queue", "logs", f"units-{u}"], repo, env, check=False, timeout=60) for u in (12, 20)]
                raise AssertionError(status + "".join(log.stdout + log.stderr for log in logs))
            time.sleep(2)
    finally:  # no worker outlives the test, whatever happened
        sh(["dvc", "queue", "stop", "--kill"], repo, env, check=False, timeout=120)
    assert status.count("Success") == 2, status
    monkeypatch.chdir(repo)
    for units in (12, 20):  # each experiment's record and its model agree: no shared paths mixed them up
        report = audit(repo, env, f"units-{units}")
        assert report["stages"]["train-lstm"]["params"]["train-lstm.units"] == units
        assert Model("char", rev=f"units-{units}").stepper.units == [units]
