"""Sharing artifacts: `dvc push` / `dvc pull` through a local-directory remote and a real S3 API
server (moto) on 127.0.0.1, and the second person's flow: clone, pull, nothing to retrain."""

import hashlib
import json
import os
import sys
import signal
import subprocess
import threading
import time

import pytest

from conftest import sh
from test_pipeline import repro, set_param


def data_hashes(repo) -> dict:
    """sha256 of every artifact file DVC keeps under data/."""
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((repo / "data").rglob("*")) if p.is_file() and p.name != ".gitignore"}


@pytest.fixture
def built(reproduced_project, tmp_path):
    """A copy of the reproduced project for each test, each pushing to a remote of its own."""
    return reproduced_project(tmp_path / "repo")


def commit_and_push(repo, env, *remote_args):
    sh(["dvc", "remote", "add", "-d", *remote_args], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "pipeline outputs and remote"], repo, env)
    return sh(["dvc", "push"], repo, env)


def second_person(repo, env, tmp_path, hashes):
    """A fresh clone pulls everything, byte for byte, and retrains nothing."""
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / "data/models/char.keras").exists() and not (clone / "data/raw").exists()
    sh(["dvc", "pull"], clone, env)
    assert data_hashes(clone) == hashes
    assert {"data/raw/pg1.txt", "data/clean/corpus.txt", "data/vocab/chars.json", "data/windows/train.npy",
            "data/models/char.keras", "data/headlines/vocab.json", "data/models/headlines.keras"} <= set(hashes)
    assert repro(clone, env) == []
    set_param(clone, "sample", "temperature", 1.3)
    assert repro(clone, env) == ["sample"]


def test_local_remote_round_trip(built, tmp_path):
    repo, env = built
    hashes = data_hashes(repo)
    commit_and_push(repo, env, "shared", str(tmp_path / "remote"))
    second_person(repo, env, tmp_path, hashes)


class Gate:
    """WSGI middleware around the S3 server: counts object uploads and, once closed, holds
    every request until it is opened again (a connection that hangs mid-push). With `cut_dir`
    (a function that stores an empty object under a key), the first upload of a directory
    listing (a `.dir` object) stalls after 0 bytes, which the store keeps, as a store that keeps
    what it was sent of an object would: its request never gets an answer until the gate opens."""

    def __init__(self, app):
        self.app, self.uploads, self.close_after, self.cut_dir = app, 0, None, None
        self.opened = threading.Event()
        self.opened.set()

    def __call__(self, environ, start_response):
        self.opened.wait()
        if self.cut_dir and environ["REQUEST_METHOD"] == "PUT" and environ["PATH_INFO"].endswith(".dir"):
            store_empty, self.cut_dir = self.cut_dir, None
            store_empty(environ["PATH_INFO"].strip("/").split("/", 1)[1])
            self.opened.clear()
            self.opened.wait()  # until the push has been killed
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return [b""]
        response = self.app(environ, start_response)
        if environ["REQUEST_METHOD"] == "PUT" and environ["PATH_INFO"].strip("/").count("/"):
            self.uploads += 1
            if self.uploads == self.close_after:
                self.opened.clear()
        return response


@pytest.fixture
def s3(monkeypatch):
    """A real S3 API (moto's server) on 127.0.0.1 with a bucket, behind a Gate."""
    import boto3
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server
    gate = Gate(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, gate, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="textgen")
    # moto keeps its buckets per process, not per server: start each test with an empty one
    for stored in client.list_objects_v2(Bucket="textgen").get("Contents", []):
        client.delete_object(Bucket="textgen", Key=stored["Key"])
    yield endpoint, gate, client
    gate.opened.set()
    server.shutdown()


def with_s3_remote(repo, env, endpoint) -> dict:
    """The project's default remote set to the S3 server, committed; the environment to reach it."""
    env = {**env, **{k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}}
    sh(["dvc", "remote", "add", "-d", "s3", "s3://textgen/lstm"], repo, env)
    sh(["dvc", "remote", "modify", "s3", "endpointurl", endpoint], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "pipeline outputs and remote"], repo, env)
    return env


def test_s3_round_trip_survives_an_interrupted_push(built, s3, tmp_path):
    repo, env = built
    endpoint, gate, client = s3
    hashes = data_hashes(repo)
    env = with_s3_remote(repo, env, endpoint)

    gate.close_after = 1  # the first upload lands, then the connection hangs
    push = subprocess.Popen(["dvc", "push"], cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while gate.uploads < 1 or gate.opened.is_set():
        assert push.poll() is None and time.monotonic() < deadline, "dvc push ended before it could be interrupted"
        time.sleep(0.05)
    os.killpg(push.pid, signal.SIGKILL)
    push.wait()
    gate.opened.set()
    stored = lambda: len(client.list_objects_v2(Bucket="textgen").get("Contents", []))  # noqa: E731
    time.sleep(0.5)  # let the held requests finish server-side
    partial = stored()
    assert 1 <= partial
    assert "new:" in sh(["dvc", "status", "--cloud"], repo, env).stdout  # the remote lacks some files

    sh(["dvc", "push"], repo, env)  # run again, it completes
    assert stored() > partial
    assert "are in sync" in sh(["dvc", "status", "--cloud"], repo, env).stdout
    second_person(repo, env, tmp_path, hashes)


def test_a_push_killed_mid_object_is_mended_by_check_remote(built, s3, tmp_path):
    """The upload of a directory listing stalls with 0 bytes stored, and the push is killed: from
    then on every `dvc push` fails ("corrupted") and `dvc status -c` does not say why. The
    check finds the bad object, --remove-bad removes it, and the next push sends it again: a
    fresh clone pulls everything and has nothing to rerun."""
    repo, env = built
    endpoint, gate, client = s3
    hashes = data_hashes(repo)
    env = with_s3_remote(repo, env, endpoint)

    gate.cut_dir = lambda key: client.put_object(Bucket="textgen", Key=key, Body=b"")
    push = subprocess.Popen(["dvc", "push"], cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while gate.opened.is_set():
        assert push.poll() is None and time.monotonic() < deadline, "dvc push ended before the cut"
        time.sleep(0.05)
    os.killpg(push.pid, signal.SIGKILL)
    push.wait()
    gate.opened.set()
    time.sleep(0.5)
    cut = [o["Key"] for o in client.list_objects_v2(Bucket="textgen")["Contents"] if o["Key"].endswith(".dir")]
    assert [client.head_object(Bucket="textgen", Key=k)["ContentLength"] for k in cut] == [0]
    wedged = sh(["dvc", "push"], repo, env, check=False)
    assert wedged.returncode != 0 and "corrupted" in wedged.stderr + wedged.stdout  # DVC's own behaviour

    check = [sys.executable, "-m", "lstm_textgen", "check-remote"]
    found = sh(check, repo, env, check=False)
    assert found.returncode == 1 and f"bad: textgen/{cut[0]}: " in found.stdout
    assert "does not parse as a directory listing (0 bytes)" in found.stdout
    removed = sh([*check, "--remove-bad"], repo, env)
    assert "removed 1 bad of" in removed.stdout
    sh(["dvc", "push"], repo, env)
    assert "each is what its name says" in sh(check, repo, env).stdout
    second_person(repo, env, tmp_path, hashes)


def test_check_remote_finds_a_file_object_whose_bytes_are_not_its_name(built, tmp_path):
    """On a local-directory remote: one object's bytes changed (a push cut short on a store that
    keeps partial objects), another untouched. The damaged one is a file of a directory output,
    whose listing the remote holds: `dvc push` takes such a directory as sent unless its listing
    goes too."""
    repo, env = built
    commit_and_push(repo, env, "shared", str(tmp_path / "remote"))
    store = tmp_path / "remote/files/md5"
    member = json.loads(next(store.rglob("*.dir")).read_text())[0]["md5"]
    damaged = store / member[:2] / member[2:]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    check = [sys.executable, "-m", "lstm_textgen", "check-remote"]
    found = sh(check, repo, env, check=False)
    assert found.returncode == 1 and damaged.name in found.stdout and "not to its name" in found.stdout
    assert found.stdout.count("bad:") == 1
    sh([*check, "--remove-bad"], repo, env)
    assert not damaged.exists()
    sh(["dvc", "push"], repo, env)
    assert damaged.exists() and "each is what its name says" in sh(check, repo, env).stdout
    listing = json.loads(next((tmp_path / "remote/files/md5").rglob("*.dir")).read_text())
    assert all("md5" in entry for entry in listing)
