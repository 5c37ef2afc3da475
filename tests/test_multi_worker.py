"""train-lstm across machines (`distribute: multi_worker`): two real worker processes on
127.0.0.1, each in its own copy of the project as on its own machine, joined by TF_CONFIG.
Only the chief writes; the other writes nothing DVC tracks; a killed pair resumes from the
chief's checkpoint; and the result is one-process training's, up to float rounding. (One test
kills and restarts the pair: its epochs before the kill check training from scratch, those
after it the resume, against one-process training, in one pair's training time.)"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY, run_data_stages, write_params
from lstm_textgen.errors import UserError
from lstm_textgen.training import Role, worker_role

PARAM = "train-lstm.distribute"
# A small batch and a high learning rate: validation loss bottoms out after a few epochs and
# patience 2 ends training before `epochs` (the reference run checks it does), so the workers'
# early stopping is tested too. Dropout 0 and the same global batch: one process and two
# workers then compute the same updates, except that the gradient is summed over two replicas in
# another order, a float32 rounding difference (seen here: about 1e-6 of the loss). 1e-3 allows
# for that growing over a few epochs and nothing more: a worker that skipped its half of a batch,
# or resumed from its own state rather than the chief's, moves the loss by far more.
TRAIN = {"units": 64, "embedding_dim": 16, "learning_rate": 0.01, "batch_size": 16, "dropout": 0.0,
         "patience": 2, "epochs": 12}
TOLERANCE = 1e-3


def train_params(folder, distribute, **changes):
    write_params(folder, **{**TINY, "train_lstm": {**TINY["train_lstm"], **TRAIN, "distribute": distribute, **changes}})


@pytest.fixture(scope="module")
def machines(tmp_path_factory):
    """Two folders with the same data stages run, as two machines after `dvc pull`, and the
    validation losses of one-process training there (the reference)."""
    chief = tmp_path_factory.mktemp("machine-a")
    run_data_stages(chief, n_words=2000)  # half the usual fixture book: 8 epochs of it still end by patience
    other = tmp_path_factory.mktemp("machine-b")
    shutil.copytree(chief, other, dirs_exist_ok=True)
    alone = tmp_path_factory.mktemp("one-process")
    shutil.copytree(chief, alone, dirs_exist_ok=True)
    train_params(alone, "one_device")
    subprocess.run([sys.executable, str(ROOT / "stages/train_lstm.py"), "char"], cwd=alone, check=True,
                   capture_output=True, timeout=300)
    metrics = json.loads((alone / "metrics/train/char/run.json").read_text())
    assert metrics["epochs_run"] < TRAIN["epochs"]  # patience ended it: early stopping is in play
    return chief, other, {"losses": validation_losses(alone), "epochs_run": metrics["epochs_run"],
                          "best_epoch": metrics["best_epoch"]}


def validation_losses(folder):
    rows = (folder / "metrics/train/char/loss.tsv").read_text().splitlines()[1:]
    return [float(row.split("\t")[2]) for row in rows]


def free_ports(n):
    """n ports of 127.0.0.1 that are free now, below the kernel's ephemeral range: the servers
    other test workers start on port 0 (HTTP, S3) are given ports inside that range, so none of
    them can take one of these before the training workers bind it."""
    lowest_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = range(10000, lowest_ephemeral)
    ports = []
    for port in random.SystemRandom().sample(candidates, min(200, len(candidates))):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # in use
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise AssertionError(f"no {n} free ports of 127.0.0.1 in {candidates}")


def start_workers(folders, **changes):
    """One train-lstm process per folder, worker i in folders[i], on free ports of 127.0.0.1;
    `changes` to the params of the last worker only."""
    cluster = [f"127.0.0.1:{port}" for port in free_ports(len(folders))]
    procs = []
    for index, folder in enumerate(folders):
        train_params(folder, "multi_worker", **(changes if index == len(folders) - 1 else {}))
        tf_config = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "stages/train_lstm.py"), "char"], cwd=folder,
                                      env={**os.environ, "TF_CONFIG": tf_config},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, codes=(0, 0)):
    try:
        logs = [proc.communicate(timeout=300)[1] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert tuple(p.returncode for p in procs) == codes, "\n----\n".join(logs)
    return logs


def same_training(folder, reference):
    metrics = json.loads((folder / "metrics/train/char/run.json").read_text())
    assert (metrics["epochs_run"], metrics["best_epoch"]) == (reference["epochs_run"], reference["best_epoch"])
    assert validation_losses(folder) == pytest.approx(reference["losses"], rel=TOLERANCE)
    return metrics


def tracked_by_dvc(folder):
    """What of train-lstm's outputs (and its checkpoint) exists in `folder`."""
    return sorted(str(p.relative_to(folder)) for p in
                  [*folder.glob("data/models/*"), *folder.glob("metrics/train/*"), *folder.glob("data/checkpoints/*")])


def test_two_workers_killed_and_restarted_train_one_model_as_one_process_would(machines):
    """The pair trains from scratch until the chief has checkpointed two epochs, is killed, and
    started again: the chief resumes and the result is one-process training's, every epoch's
    validation loss (those before the kill as those after) within TOLERANCE."""
    chief, other, alone = machines
    kill_after_epoch(start_workers([chief, other]), chief, 2)
    assert tracked_by_dvc(chief) == ["data/checkpoints/char"]
    assert tracked_by_dvc(other) == []  # not even a checkpoint: the chief's is the only one

    logs = finish(start_workers([chief, other]))
    assert "worker 0 of 2 (the chief)" in logs[0] and "worker 1 of 2 (writes nothing)" in logs[1]
    assert "resuming the interrupted run after epoch" in logs[0], logs[0]
    assert tracked_by_dvc(chief) == ["data/models/char.keras", "data/models/char.npz", "metrics/train/char"]
    assert tracked_by_dvc(other) == []  # the other machine's tree is as `dvc pull` left it
    metrics = same_training(chief, alone)
    assert (metrics["workers"], metrics["replicas"]) == (2, 2)
    assert 2 <= metrics["resumed_after_epoch"] < alone["epochs_run"]


def kill_after_epoch(procs, chief, epoch):
    """Kill the pair (SIGKILL, as a lost machine) once the chief has checkpointed `epoch` epochs."""
    backup = chief / "data/checkpoints/char/backup/training_metadata.json"
    deadline = time.monotonic() + 240
    while True:
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, "training ended before the kill"
        try:
            if json.loads(backup.read_text())["epoch"] >= epoch:
                break
        except (OSError, ValueError, KeyError):  # not written yet, or caught mid-write
            pass
        time.sleep(0.05)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_resume_whose_latest_weights_cannot_be_read_goes_on_from_the_copy_kept_of_the_epoch_before(machines):
    """As one process's BackupAndRestore does (double_checkpoint): the chief finds its latest
    weights truncated, puts back the .bkp copy of the epoch before, and the pair resumes from
    there; the result is still one-process training's."""
    chief, other, alone = machines
    kill_after_epoch(start_workers([chief, other]), chief, 3)
    backup = chief / "data/checkpoints/char/backup"
    copy_of = json.loads((backup / "training_metadata.json.bkp").read_text())["epoch"]
    latest = backup / "latest.weights.h5"
    latest.write_bytes(latest.read_bytes()[:1000])  # a disk that filled up mid-write

    logs = finish(start_workers([chief, other]))
    assert f"resuming from the copy kept of epoch {copy_of}" in logs[0], logs[0]
    metrics = same_training(chief, alone)
    assert metrics["resumed_after_epoch"] == copy_of


def test_when_the_chief_fails_while_saving_every_worker_exits_1(machines):
    """The chief trains to the end, then cannot write its model (here data/models is a file, as
    on a full or read-only disk): the other worker, already done, must not exit 0."""
    chief, other, _ = machines
    models = chief / "data/models"
    kept = chief / "models-kept"
    if models.exists():
        models.rename(kept)
    models.write_text("not a folder")
    try:
        logs = finish(start_workers([chief, other]), codes=(1, 1))
    finally:
        models.unlink()
        if kept.exists():
            kept.rename(models)
        shutil.rmtree(chief / "data/checkpoints", ignore_errors=True)
    assert "error: worker 0 (the chief) failed while writing the model and metrics" in logs[1], logs[1]
    assert "done; worker 0 wrote the model" not in logs[1]


def test_workers_whose_params_differ_from_the_chiefs_all_stop_saying_so(machines):
    chief, other, _ = machines
    logs = finish(start_workers([chief, other], epochs=TRAIN["epochs"] + 1), codes=(1, 1))
    message = "error: the workers' train-lstm params or training data differ from the chief's"
    assert message in logs[0] and "(this worker's match)" in logs[0]
    assert message in logs[1] and "(this worker's differ)" in logs[1]


@pytest.mark.parametrize("tf_config, problem", [
    (None, "the TF_CONFIG environment variable is not set"),
    ("{cluster: }", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG has no "cluster" with a "worker" list'),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "must be host:port"),
    ('{"cluster": {"worker": ["a:1", "b:2"], "ps": ["c:3"]}, "task": {"type": "worker", "index": 0}}',
     "names ps, which MultiWorkerMirroredStrategy does not use"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     '"task" must name this machine\'s place in the cluster'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', '"task" must name this machine\'s place in the cluster'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": true}}', "worker 0 to 1"),
    ('{"cluster": {"chief": "a:1", "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}',
     '"chief" must be a list of one host:port address'),
])
def test_a_missing_or_malformed_tf_config_is_named(tf_config, problem):
    with pytest.raises(UserError) as err:
        worker_role(tf_config, PARAM)
    assert problem in str(err.value) and f"{PARAM} is multi_worker" in str(err.value)
    assert "docs/gpus.md" in str(err.value)


def test_each_process_finds_its_place_in_the_cluster():
    two = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": %d}}'
    assert [worker_role(two % i, PARAM) for i in (0, 1)] == [Role(0, 2), Role(1, 2)]
    with_chief = '{"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "%s", "index": %d}}'
    assert worker_role(with_chief % ("chief", 0), PARAM) == Role(0, 3)
    assert worker_role(with_chief % ("worker", 1), PARAM) == Role(2, 3)
    assert not Role(2, 3).chief and Role(0, 3).chief


def test_the_stage_says_so_before_loading_tensorflow(tmp_path, monkeypatch):
    run_data_stages(tmp_path, train_lstm={**TINY["train_lstm"], "distribute": "multi_worker"})
    monkeypatch.delenv("TF_CONFIG", raising=False)
    # The stage as DVC runs it, then whether it had imported TensorFlow when it stopped.
    script = ("import runpy, sys\nsys.argv = [sys.argv[1], 'char']\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
              "except SystemExit as exit:\n    print('tensorflow' in sys.modules, exit.code)")
    proc = subprocess.run([sys.executable, "-c", script, str(ROOT / "stages/train_lstm.py")], cwd=tmp_path,
                          capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["False", "1"], proc.stderr
    assert proc.stderr.startswith(f"error: {PARAM} is multi_worker, but the TF_CONFIG environment variable is not set")


@pytest.mark.parametrize("index", [0, 1], ids=["the chief waits for a worker", "a worker waits for the chief"])
def test_a_worker_that_never_answers_is_named_then_given_up_on(tmp_path, index):
    """TF_CONFIG names a second worker on a port of 127.0.0.1 where nothing listens: the stage
    says whom it waits for while it waits, then gives up after worker_timeout with one message
    naming the address, exit code 1, and the previous model as it was."""
    run_data_stages(tmp_path, n_words=300,
                    train_lstm={**TINY["train_lstm"], "distribute": "multi_worker", "worker_timeout": 8})
    (tmp_path / "data/models").mkdir(parents=True)
    (tmp_path / "data/models/char.keras").write_bytes(b"the previous model")
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "stages/train_lstm.py"), "char"], cwd=tmp_path,
                          env={**os.environ, "TF_CONFIG": json.dumps(tf_config)}, capture_output=True, text=True,
                          timeout=300)
    other = 1 - index
    silent = f"worker {other}{' (the chief)' if other == 0 else ''} at {addresses[other]}"
    assert proc.returncode == 1, proc.stderr
    assert f"waiting for {silent} (" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: gave up after") and f"nothing answers at {silent}" in last
    assert "train-lstm.worker_timeout = 8" in last and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 120
    assert (tmp_path / "data/models/char.keras").read_bytes() == b"the previous model"
    assert not (tmp_path / "metrics/train").exists()
