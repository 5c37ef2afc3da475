"""The training recipe around Keras' fit: params, a base model to start from, checkpoints that make
a killed run resume exactly, early stopping carried across kills, and several workers.

A run that is killed resumes exactly: it ends with the weights, best_val_loss, best_epoch and
epochs_run the uninterrupted run would have had. After every epoch, Keras' BackupAndRestore
saves the weights, the optimizer state and the epoch counter to data/checkpoints/<branch>/,
beside DVCLive's log of every epoch's losses and, whenever validation improves, the best
weights so far (best.npz). The next run rebuilds early stopping from that log (best loss, its
epoch, the epochs since), and draws each epoch's order and dropout masks from (seed, epoch)
alone, so the epochs after the kill are the ones the uninterrupted run trained. A checkpoint
of a run that had already finished (patience ran out, or `epochs` reached, even lowered since)
only saves its best model. A run starts fresh, and says why, when its params (other than
epochs and patience) or its data differ from the checkpoint's, or the checkpoint lacks
what an exact resume needs.

`init_from` (char branch): training starts from the weights of a base model in data/base/,
typically trained on more text by another clone of this project and brought in with `dvc
import`. Its layers, units, embedding and vocabulary must be the params' and encode-vocab's.

TensorFlow is imported inside the functions that need it, so the checks before training
(params, TF_CONFIG, the base model's shape) answer at once."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import contextlib
import select
import shutil
import signal
import socket
import sys
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lstm_textgen.errors import UserError
from lstm_textgen.files import pieces_of, sha256_file, write_json, write_npz, write_text
from lstm_textgen.params import (base_file, boolean, fraction, integer, non_negative_int, one_of, optional,
                                 positive_int, positive_number, share)


PARAMS = {"layers": positive_int, "units": positive_int, "embedding_dim": positive_int, "dropout": share,
          "batch_size": positive_int, "epochs": positive_int, "max_tokens": optional(positive_int),
          "learning_rate": positive_number, "warmup_tokens": non_negative_int,
          "decay_after_tokens": optional(non_negative_int), "half_life_tokens": optional(positive_int),
          "cooldown": share, "clipnorm": optional(positive_number), "ema": optional(fraction),
          "unigram_bias": boolean, "precision": one_of("auto", "float32", "mixed_bfloat16"),
          "seed": integer, "patience": non_negative_int,
          "distribute": one_of("one_device", "mirrored", "multi_worker"), "worker_timeout": positive_number}


def check_recipe(params: dict, stage: str) -> None:
    """The params that only make sense together."""
    if params["cooldown"] and not params["max_tokens"]:
        raise UserError(f"params.yaml: {stage}.cooldown = {params['cooldown']} needs {stage}.max_tokens, the budget "
                        "whose last share it cools the learning rate down over: set max_tokens, or cooldown: 0")
    if params["decay_after_tokens"] is not None and not params["half_life_tokens"]:
        raise UserError(f"params.yaml: {stage}.decay_after_tokens = {params['decay_after_tokens']} needs "
                        f"{stage}.half_life_tokens (how fast the rate halves after it): set it, or "
                        "decay_after_tokens: null")


BRANCH_PARAMS = {"char": {"init_from": base_file(".keras", "data/base/model.keras")}, "headlines": {}}


BASE_RECORD = "base_model.json"  # in metrics/train/<branch>/, when training started from a base model


def schema(branch: str) -> dict:
    """The params a branch's train stage reads."""
    return PARAMS | BRANCH_PARAMS[branch]


def saved_shape(path) -> dict:
    """The shape of a model train-lstm saved, read from the .keras file's config.json (no
    TensorFlow): vocabulary size, embedding width, and the units of each LSTM layer."""
    with zipfile.ZipFile(path) as archive:
        layers = json.loads(archive.read("config.json"))["config"]["layers"]
    embedding = next(layer["config"] for layer in layers if layer["class_name"] == "Embedding")
    return {"vocabulary": embedding["input_dim"], "embedding_dim": embedding["output_dim"],
            "units": [layer["config"]["units"] for layer in layers if layer["class_name"] == "LSTM"]}


def shape_mismatches(base: dict, params: dict, vocab_size: int, stage: str, vocab_path) -> list[str]:
    """How a base model's shape differs from the one the params and vocabulary make; each line
    names both sides."""
    wanted = {"vocabulary": vocab_size, "embedding_dim": params["embedding_dim"],
              "units": [params["units"]] * params["layers"]}
    where = {"vocabulary": f"{vocab_path} has {vocab_size} tokens",
             "embedding_dim": f"{stage}.embedding_dim = {params['embedding_dim']}",
             "units": f"{stage}.layers = {params['layers']}, units = {params['units']}"}
    said = {"vocabulary": f"a vocabulary of {base['vocabulary']} tokens",
            "embedding_dim": f"embedding_dim {base['embedding_dim']}",
            "units": f"{len(base['units'])} LSTM layers of {', '.join(map(str, base['units'])) or 'no'} units"}
    return [f"the base model has {said[k]}, but {where[k]}" for k in wanted if base[k] != wanted[k]]


def imported_from(path: str) -> dict | None:
    """Where `dvc import` brought the file at `path` from (its .dvc file), or None."""
    import yaml
    try:
        record = yaml.safe_load(Path(f"{path}.dvc").read_text(encoding="utf-8"))
        dep = record["deps"][0]
        return {"repo": dep["repo"]["url"], "rev": dep["repo"].get("rev_lock"), "path": dep["path"]}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def check_base_model(params: dict, vocab: dict, spec: dict) -> dict:
    """What training starts from, when init_from names a base model: checked before TensorFlow
    loads, and recorded (its sha256, and the repo and commit it was imported from)."""
    path, stage = params["init_from"], spec["train_stage"]
    howto = "(docs/own-text.md)"
    if not Path(path).is_file():
        raise UserError(f"params.yaml: {stage}.init_from = {path!r}: no such file. Bring the base model in with "
                        f"`dvc import <base repo> data/models/char.keras -o {path}` {howto}, or `dvc pull` if this "
                        "project imports it already")
    try:
        shape = saved_shape(path)
    except (OSError, ValueError, KeyError, StopIteration, zipfile.BadZipFile) as err:
        raise UserError(f"{path} is not a model train-lstm saved ({type(err).__name__}: {err}); set "
                        f"{stage}.init_from to the .keras file of a base model")
    if "base" not in vocab:
        raise UserError(f"{stage}.init_from is set, but {spec['vocab']} is this corpus' own vocabulary, so its ids "
                        f"are not the ones the base model learnt: set encode-vocab.base_vocab to the base model's "
                        f"chars.json {howto}")
    source, vocab_source = imported_from(path), imported_from(vocab["base"]["path"])
    if source and vocab_source and (source["repo"], source["rev"]) != (vocab_source["repo"], vocab_source["rev"]):
        raise UserError(f"the base model {path} and the base vocabulary {vocab['base']['path']} come from different "
                        f"places ({source['repo']} at {source['rev']}, {vocab_source['repo']} at "
                        f"{vocab_source['rev']}): import both from the same commit (`dvc update --rev …` both)")
    problems = shape_mismatches(shape, params, len(vocab["tokens"]), stage, spec["vocab"])
    if problems:
        fix = ("Set encode-vocab.base_vocab to the base model's own chars.json" if shape["vocabulary"] !=
               len(vocab["tokens"]) else f"Set {stage}'s params to the base model's (or choose another base)")
        raise UserError(f"the base model {path} does not fit this training:\n  " + "\n  ".join(problems)
                        + f"\n{fix} {howto}")
    return {"path": path, "sha256": sha256_file(path), "imported_from": source,
            "vocab": vocab["base"] | {"imported_from": vocab_source}}


CHECKPOINTS = Path("data/checkpoints")


NOT_BINDING = ("epochs", "patience", "worker_timeout")  # a resumed run may change these

PRECISION_MARGIN = 1.1  # precision auto keeps float32 unless mixed bfloat16 trains this many times faster
PRECISION_SECONDS = 5   # of steps timed in each precision


class Role(NamedTuple):
    index: int  # this process's place among the workers; 0 is the chief, which alone writes files
    count: int  # workers in all

    @property
    def chief(self) -> bool:
        return self.index == 0


TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host-a:12345", "host-b:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}\' on host-a, the same with "index": 1 on host-b')


def worker_role(tf_config: str | None, param: str) -> Role:
    """This process's place in a multi-worker run, from the TF_CONFIG environment variable that
    tf.distribute.MultiWorkerMirroredStrategy reads (checked here, before TensorFlow loads, so
    that a mistake is one clear message rather than a worker waiting for peers that never come)."""
    def wrong(problem):
        return UserError(f"{param} is multi_worker, but {problem}. Set TF_CONFIG on every machine "
                         f"(see docs/gpus.md), e.g. {TF_CONFIG_EXAMPLE}; "
                         f"or set {param}: one_device")

    if not tf_config:
        raise wrong("the TF_CONFIG environment variable is not set")
    try:
        config = json.loads(tf_config)
    except ValueError as err:
        raise wrong(f"TF_CONFIG is not valid JSON ({err}): {tf_config!r}")
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(cluster.get("worker", cluster.get("chief")), list):
        raise wrong(f'TF_CONFIG has no "cluster" with a "worker" list of host:port addresses: {tf_config!r}')
    others = sorted(set(cluster) - {"chief", "worker"})
    if others:
        raise wrong(f"TF_CONFIG's cluster names {', '.join(others)}, which MultiWorkerMirroredStrategy does not use "
                    f"(only chief and worker)")
    if "chief" in cluster and not (isinstance(cluster["chief"], list) and len(cluster["chief"]) == 1):
        raise wrong(f'TF_CONFIG\'s "chief" must be a list of one host:port address, got {cluster["chief"]!r}')
    if not isinstance(cluster.get("worker", []), list):
        raise wrong(f'TF_CONFIG\'s "worker" must be a list of host:port addresses, got {cluster["worker"]!r}')
    addresses = [*cluster.get("chief", []), *cluster.get("worker", [])]
    bad = [a for a in addresses if not (isinstance(a, str) and a.rpartition(":")[0] and a.rpartition(":")[2].isdigit())]
    if bad or not addresses:
        raise wrong(f"TF_CONFIG's cluster addresses must be host:port, got {bad or addresses!r}")
    kind, index = (task.get("type"), task.get("index")) if isinstance(task, dict) else (None, None)
    if (kind not in cluster or not isinstance(index, int) or isinstance(index, bool)
            or not 0 <= index < len(cluster[kind])):
        places = {k: len(v) for k, v in cluster.items()}
        raise wrong('TF_CONFIG\'s "task" must name this machine\'s place in the cluster, as '
                    '{"type": "worker", "index": i}: the cluster has '
                    + ", ".join(f"{k} 0 to {n - 1}" for k, n in places.items()) + f"; got {task!r}")
    return Role(index + (len(cluster.get("chief", [])) if kind == "worker" else 0), len(addresses))


def cluster_addresses(tf_config: str) -> list[str]:
    """Every worker's host:port, in Role.index order (a "chief" entry first); TF_CONFIG as
    worker_role has checked it."""
    cluster = json.loads(tf_config)["cluster"]
    return [*cluster.get("chief", []), *cluster.get("worker", [])]


def answers(address: str, seconds: float = 1.0) -> bool:
    """Whether something listens at host:port (a worker's TensorFlow server, once it started)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def waiting_for_the_others(role: Role, timeout: float, stage: str):
    """Run the block, in which a multi-worker run meets its other workers, watched: TensorFlow
    waits for them without a word, for ever, and holding Python's lock, so no thread of this
    process can speak meanwhile. This process forks before TensorFlow loads: the child runs the
    block and the training; the parent (no TensorFlow) says every few seconds which workers do not
    answer yet and, after `timeout` seconds, stops the child and exits 1 with one message naming
    them, before anything is written; once the workers have met, it only waits for the child
    and exits as it did. Alone (one worker): just the block."""
    if role.count == 1:
        yield
        return
    others = {i: a for i, a in enumerate(cluster_addresses(os.environ["TF_CONFIG"])) if i != role.index}
    met_r, met_w = os.pipe()
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        os.close(met_w)
        sys.exit(watch_the_meeting(child, met_r, others, timeout, stage))
    os.close(met_r)
    die_with(parent)
    yield
    os.write(met_w, b"met")
    os.close(met_w)


@contextlib.contextmanager
def outcome_shared(setup: "Setup", role: Role):
    """Run the block (the chief writes the results there; the others nothing), then let every
    worker learn whether it ended well on all of them, so that each exits as the run ended: a
    worker whose chief failed while saving exits 1 too, instead of 0 with no model anywhere."""
    failure = None
    try:
        yield
    except BaseException as err:  # noqa: BLE001 (told to the others first, then raised)
        failure = err
    if role.count > 1:
        from lstm_textgen.model import on_any_worker
        if on_any_worker(setup.strategy, failure is not None) and failure is None:
            raise UserError("worker 0 (the chief) failed while writing the model and metrics: its log says why. "
                            "Nothing was written on this machine; run the training again on all of them")
    if failure is not None:
        raise failure


def die_with(parent: int) -> None:
    """Have the kernel kill this process when `parent` dies (Linux's PR_SET_PDEATHSIG), so that a
    stage killed outright (kill -9) takes its training with it. Elsewhere nothing is asked."""
    import ctypes
    import ctypes.util
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request: follow it now
        os._exit(1)


def watch_the_meeting(child: int, met: int, others: dict[int, str], timeout: float, stage: str) -> int:
    """The parent's side of waiting_for_the_others: the child's exit code, or 1 if it gave up."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # a stopped stage stops its training
        signal.signal(sig, lambda number, frame: os.kill(child, number))
    name = {i: f"worker {i}" + (" (the chief)" if i == 0 else "") for i in others}
    started, every = time.monotonic(), min(10.0, max(timeout / 3, 1.0))
    said = 0.0
    while not select.select([met], [], [], 1.0)[0]:
        ended, status = os.waitpid(child, os.WNOHANG)
        if ended:
            return exit_code(status)
        waited = time.monotonic() - started
        if waited < said + every and waited < timeout:
            continue
        silent = [i for i, address in others.items() if not answers(address)]
        if not silent:
            continue  # all up: TensorFlow is meeting them
        who = ", ".join(f"{name[i]} at {others[i]}" for i in silent)
        if waited >= timeout:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            print(f"error: gave up after {waited:.0f} s ({stage}.worker_timeout = {timeout:g}): nothing answers at "
                  f"{who}. Start the same training there (docs/gpus.md), or correct TF_CONFIG's addresses; "
                  "nothing was written, the previous model is kept", file=sys.stderr, flush=True)
            return 1
        print(f"waiting for {who} ({waited:.0f} s)", file=sys.stderr, flush=True)
        said = waited
    return exit_code(os.waitpid(child, 0)[1])


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code  # killed by signal n: 128 + n, as a shell reports it


def prepare_checkpoint(folder: Path, fingerprint: dict) -> tuple[int, str | None]:
    """Keep what an interrupted run with the same fingerprint left in `folder`, or empty it.
    Returns the epochs already done and what to tell the user."""
    saved, metadata = folder / "fingerprint.json", folder / "backup" / "training_metadata.json"
    note = None
    if saved.exists():
        try:
            old = json.loads(saved.read_text())
            done = json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0
        except (ValueError, KeyError):
            old, done = {}, 0
        if old == fingerprint and done:
            keep_logged_epochs(folder / "live", done)
            missing = missing_for_resume(folder, done)
            if not missing:
                return done, f"resuming the interrupted run after epoch {done} (from {folder})"
            note = f"starting fresh: the checkpoint in {folder} lacks {missing}"
        else:
            changed = sorted(k for part in ("params", "data") for k in fingerprint[part]
                             if old.get(part, {}).get(k) != fingerprint[part][k])
            note = (f"starting fresh: the checkpoint in {folder} was made with a different "
                    f"{', '.join(changed) or 'state'}")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(saved, fingerprint)
    return 0, note


def missing_for_resume(folder: Path, done: int) -> str | None:
    """What, if anything, the checkpoint of `done` epochs in `folder` lacks to resume exactly: a
    logged validation loss for each epoch, and the best epoch's weights, unless that epoch is
    the last (BackupAndRestore holds those)."""
    try:
        losses = logged_val_losses(folder / "live")
    except UserError:
        return "a log of one row per epoch"
    if len(losses) != done:
        return f"a logged validation loss for each of its {done} epochs"
    best = early_stopping_state(losses, patience=0).epoch
    if best < done - 1 and saved_best_weights(folder, best) is None:
        return f"the weights of its best epoch ({best + 1})"
    return None


class Best(NamedTuple):
    loss: float | None  # the lowest validation loss so far (None before the first epoch)
    epoch: int          # its epoch, counted from 0 as Keras does
    wait: int           # epochs since then
    stop: bool          # patience has run out: training is over


def early_stopping_state(val_losses: list[float], patience: int) -> Best:
    """What keras.callbacks.EarlyStopping (min_delta 0) knows after the epochs with these
    validation losses: a resumed run rebuilds it from the log, so patience keeps counting from
    the best epoch before the kill instead of restarting. `patience` 0 never stops early."""
    best, best_epoch, wait = None, 0, 0
    for epoch, loss in enumerate(val_losses):
        wait += 1  # as Keras counts: every epoch, reset by an improvement
        if best is None or loss < best:  # the first epoch always improves, as in Keras
            best, best_epoch, wait = loss, epoch, 0
    return Best(best, best_epoch, wait, patience > 0 and wait >= patience)


def logged_losses(live_dir: Path, split: str = "eval") -> list[str]:
    """Every epoch's loss on `split` ("train" or "eval", the validation set) in DVCLive's log, in
    order, as written: repr() of the float Keras reports."""
    log = live_dir / "plots" / "metrics" / split / "loss.tsv"
    if not log.exists():
        return []
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if [row["step"] for row in rows] != [str(i) for i in range(len(rows))]:
        raise UserError(f"{log} does not hold one row per epoch in order; remove {live_dir.parent} to start fresh")
    return [row["loss"] for row in rows]


def logged_val_losses(live_dir: Path) -> list[float]:
    """Every epoch's validation loss in DVCLive's log, in order: the exact values EarlyStopping compared."""
    return [float(loss) for loss in logged_losses(live_dir, "eval")]


LOSS_TABLE = "loss.tsv"


def loss_table(live_dir: Path) -> str:
    """The per-epoch losses as the TSV `dvc plots` draws (dvc.yaml's top-level plots): columns
    epoch (from 1, as Keras' log counts), train and validation, so the x axis reads as the
    training log does and the legend names the series rather than DVCLive's files."""
    train, val = logged_losses(live_dir, "train"), logged_losses(live_dir, "eval")
    if len(train) != len(val):
        raise UserError(f"{live_dir} logged {len(train)} train losses but {len(val)} validation losses; "
                        f"remove {live_dir.parent} to start fresh")
    rows = [f"{epoch}\t{t}\t{v}\n" for epoch, (t, v) in enumerate(zip(train, val), 1)]
    return "epoch\ttrain\tvalidation\n" + "".join(rows)


BEST_WEIGHTS = "best.npz"


def save_best_weights(folder: Path, epoch: int, weights: list) -> None:
    write_npz(folder / BEST_WEIGHTS, epoch=np.array(epoch), **{f"w{i}": w for i, w in enumerate(weights)})


def saved_best_weights(folder: Path, epoch: int) -> list | None:
    """The weights saved for `epoch` (model.get_weights() order), or None if best.npz holds another epoch."""
    try:
        with np.load(folder / BEST_WEIGHTS) as f:
            if int(f["epoch"]) != epoch:
                return None
            return [f[f"w{i}"] for i in range(len(f.files) - 1)]
    except FileNotFoundError:  # none yet (write_npz is atomic: the file is whole or absent)
        return None


def resumable_early_stopping(patience: int, folder: Path, done: int, so_far: Best) -> list:
    """Keras' EarlyStopping carried across a kill, by a callback after it that saves the best
    weights to `folder` whenever validation improves and, in a run resumed after `done` epochs,
    gives EarlyStopping back the state (`so_far`) its on_train_begin has just reset. The weights
    kept are the ones validation scored: the optimizer's moving average, with `ema`. List them
    after BackupAndRestore: it saves an epoch before these save its weights as the best, so a
    best epoch missing from best.npz is the checkpoint's last, whose weights it loads first.
    `folder` None (a worker other than the chief, which saves nothing): the same decisions, no files."""
    import keras

    stopper = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)

    from lstm_textgen.model import averaged_weights

    def restore(logs=None):
        if done:
            stopper.best, stopper.best_epoch, stopper.wait = so_far.loss, so_far.epoch, so_far.wait
            saved = saved_best_weights(folder, so_far.epoch) if folder else None
            stopper.best_weights = saved if saved is not None else averaged_weights(stopper.model)

    def keep(epoch, logs=None):
        if stopper.best_epoch == epoch:  # this epoch improved on the best: keep the weights it scored
            stopper.best_weights = averaged_weights(stopper.model)
            if folder:
                save_best_weights(folder, epoch, stopper.best_weights)

    return [stopper, keras.callbacks.LambdaCallback(on_train_begin=restore, on_epoch_end=keep)]


class Plan(NamedTuple):
    """How the params' token counts fall into optimizer steps for this training data."""
    steps_per_epoch: int
    tokens_per_step: float     # tokens predicted per step, on average (padding excluded)
    budget_steps: int | None   # max_tokens, in steps (None: epochs alone end training)


def targets_per_epoch(split: dict, vocab: dict) -> int:
    """How many tokens one epoch over this split predicts (padding excluded)."""
    if "rows" in split:
        return int(np.count_nonzero(split["rows"][:, 1:] != vocab["tokens"].index(vocab["pad"])))
    return split["windows"] * split["seq_length"]


def plan(params: dict, train: dict, vocab: dict) -> Plan:
    examples = len(train["rows"]) if "rows" in train else train["windows"]
    steps = math.ceil(examples / params["batch_size"])
    per_step = targets_per_epoch(train, vocab) / steps
    budget = math.ceil(params["max_tokens"] / per_step) if params["max_tokens"] else None
    return Plan(steps, per_step, budget)


def unigram_log_shares(train: dict, vocab: dict) -> np.ndarray:
    """The log of each token's share of the training targets, counting one more of each (no log
    of 0): as the logits' bias, a model that starts out predicting the text's token frequencies
    instead of a uniform guess, which early steps otherwise spend learning."""
    size = len(vocab["tokens"])
    if "rows" in train:
        targets = train["rows"][:, 1:]
        counts = np.bincount(targets[targets != vocab["tokens"].index(vocab["pad"])], minlength=size)
    else:  # the mapped text a megabyte at a time
        counts = sum(np.bincount(piece, minlength=size) for piece in pieces_of(train["tokens"], 1 << 20))
    counts = counts + 1
    return np.log(counts / counts.sum()).astype(np.float32)


def compiled_model(params: dict, vocab_size: int, precision: str = "float32", steps: Plan | None = None,
                   unigram: np.ndarray | None = None):
    """The model, its loss and optimizer (Adam, with the params' schedule, clipping and weight
    average), made under the `distribute` strategy in `precision`; and the strategy. Its LSTM
    layers are CpuLSTM, which runs Keras' own loop (cuDNN's, on a GPU) wherever it would not be faster."""
    from lstm_textgen.model import CpuLSTM, TokenSchedule, build_model, distribution  # before keras (model.py)
    import keras

    keras.utils.set_random_seed(params["seed"])
    keras.mixed_precision.set_global_policy(precision)
    strategy = distribution(params["distribute"])
    rate = params["learning_rate"]
    if steps:
        rate = TokenSchedule(rate, steps.tokens_per_step, params["warmup_tokens"], params["decay_after_tokens"],
                             params["half_life_tokens"], params["cooldown"], params["max_tokens"])
    averaging = {"use_ema": True, "ema_momentum": params["ema"]} if params["ema"] else {}
    with strategy.scope():  # variables made here are mirrored on every replica (a no-op for one_device)
        model = build_model(vocab_size, params["embedding_dim"], params["units"], params["layers"], params["dropout"],
                            CpuLSTM)
        if unigram is not None:
            model.get_layer("logits").bias.assign(unigram)
        # Padded targets weigh 0; the mean is over the tokens that count.
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        model.compile(optimizer=keras.optimizers.Adam(rate, global_clipnorm=params["clipnorm"], **averaging),
                      loss=loss)
    return model, strategy


def start_from_the_chiefs_state(model, strategy, saved: list | None, done: int, so_far: Best,
                                identity: str, stage: str) -> tuple[int, Best]:
    """In a multi-worker run, give every worker what only the chief knows: the epochs its
    checkpoint holds, the early-stopping state and, when resuming, the weights and optimizer
    state (`saved`, read by the chief alone beforehand); and stop them all, with one message,
    unless every worker has the chief's params and data (`identity`): workers that disagree on
    the epochs or the batches would wait for each other forever. Every worker calls this at the
    same point (each sharing is a collective operation)."""
    from lstm_textgen.model import fit_across_workers, from_the_chief, on_any_worker

    fit_across_workers(model, strategy)
    mine = [int(identity[i:i + 8], 16) for i in range(0, 24, 8)]  # 96 bits of the sha256, exact in float64
    state = [done, np.nan if so_far.loss is None else so_far.loss, so_far.epoch, so_far.wait, so_far.stop, *mine]
    done, loss, epoch, wait, stop, *chiefs = from_the_chief(strategy, [np.array(state)])[0]
    same = [int(x) for x in chiefs] == mine
    if on_any_worker(strategy, not same):
        raise UserError(f"the workers' {stage} params or training data differ from the chief's (this worker's "
                        f"{'match' if same else 'differ'}): give every machine the same params.yaml and the same "
                        f"data (`dvc pull`, or the same `dvc repro window`), then start them all again")
    if done:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
        variables = [*model.weights, *model.optimizer.variables]
        if saved is None:  # not the chief: zeros of the right shapes, to which the chief's values are added
            saved = [np.zeros(v.shape) for v in variables]
        if [tuple(a.shape) for a in saved] != [tuple(v.shape) for v in variables]:
            raise UserError("the chief's checkpoint holds weights of another shape than the model; "
                            "remove data/checkpoints on the chief to start fresh")
        with strategy.scope():
            for variable, value in zip(variables, from_the_chief(strategy, saved), strict=True):
                variable.assign(value.astype(variable.dtype))
    return int(done), Best(None if np.isnan(loss) else float(loss), int(epoch), int(wait), bool(stop))


def saved_training_state(params: dict, vocab_size: int, folder: Path, steps: Plan) -> list[np.ndarray]:
    """The weights and optimizer state in the checkpoint in `folder`, in the order of
    [*model.weights, *model.optimizer.variables], read through a model of the same shape made
    on this process alone: reading the distributed model's variables would start collective
    operations that the other workers, which have no checkpoint, never join."""
    import keras

    model, _ = compiled_model({**params, "distribute": "one_device"}, vocab_size, steps=steps)
    restore = keras.callbacks.BackupAndRestore(str(folder / "backup"), double_checkpoint=True, delete_checkpoint=False)
    restore.set_model(model)
    restore.on_train_begin()  # as fit() restores: from the copy kept of the epoch before if the latest is unreadable
    return [np.asarray(v.numpy()) for v in (*model.weights, *model.optimizer.variables)]


def readable_training_state(params: dict, vocab_size: int, folder: Path, steps: Plan, fingerprint: dict, done: int,
                            note: str | None) -> tuple[list[np.ndarray] | None, int, str | None]:
    """For a multi-worker resume, the checkpoint's state as one process's fit() would resume it
    (saved_training_state: Keras' BackupAndRestore, which puts back the copy of the epoch before
    when the latest weights cannot be read); else nothing, and a fresh start. Returns the state,
    the epochs it holds and what to tell the user."""
    backup = folder / "backup"
    try:
        state = saved_training_state(params, vocab_size, folder, steps)
    except (OSError, ValueError) as err:
        state, problem = None, f"the weights in {backup} cannot be read ({err})"
    else:
        restored, _ = prepare_checkpoint(folder, fingerprint)  # the epochs restored; the logs cut to them
        if restored == done:
            return state, done, note
        problem = f"the weights in {backup} after epoch {done} cannot be read"
        if restored:
            return state, restored, f"{problem}; resuming from the copy kept of epoch {restored}"
    shutil.rmtree(folder)
    prepare_checkpoint(folder, fingerprint)
    return None, 0, f"starting fresh: {problem}"


def keep_logged_epochs(live_dir: Path, done: int) -> None:
    """Drop the rows of DVCLive's per-epoch logs past the `done` epochs a checkpoint holds."""
    for log in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        header, *rows = log.read_text().splitlines(keepends=True)
        write_text(log, header + "".join(row for row in rows if int(row.split("\t", 1)[0]) < done))


def role_of(params: dict, stage: str) -> Role:
    """This process's place among the workers: alone, unless `distribute` is multi_worker."""
    if params["distribute"] != "multi_worker":
        return Role(0, 1)
    return worker_role(os.environ.get("TF_CONFIG"), f"{stage}.distribute")


class Setup(NamedTuple):
    model: object       # the compiled keras.Model, its weights the base model's when fine-tuning
    strategy: object    # the tf.distribute strategy it was made under
    device: str         # what trains it, for the log and the metrics
    kernel: str         # the LSTM kernel Keras will run: cudnn, cpu_loop or generic
    base_model: object  # the base model (init_from), or None
    steps: Plan         # epochs and max_tokens in optimizer steps
    precision: str      # float32 or mixed_bfloat16: the params' own, or the one `auto` chose
    speeds: dict        # what `auto` timed: tokens per second in each precision (empty when it timed nothing)
    fingerprint: dict   # the params and data a checkpoint must have been made with to be resumed


def checkpoint_fingerprint(params: dict, spec: dict, base: dict | None) -> dict:
    data = {str(spec[s]): sha256_file(spec[s]) for s in ("train", "val", "layout", "vocab") if s in spec}
    if base:
        data[base["path"]] = base["sha256"]
    return {"params": {k: v for k, v in params.items() if k not in NOT_BINDING}, "data": data}


def precision_of_checkpoint(folder: Path, fingerprint: dict) -> str | None:
    """The precision `auto` chose for the interrupted run in `folder`, if it had these params and
    data: its resume keeps it rather than timing again (and perhaps choosing the other)."""
    try:
        old = json.loads((folder / "fingerprint.json").read_text())
        theirs = old["params"]
        same = {**theirs, "precision": "auto"} == fingerprint["params"] and old["data"] == fingerprint["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return theirs["precision"] if same and theirs.get("precision") in ("float32", "mixed_bfloat16") else None


def chosen_precision(params: dict, vocab: dict, train: dict, steps: Plan, folder: Path,
                     fingerprint: dict) -> tuple[str, dict]:
    """The precision to train in, and what choosing it timed. `auto`: float32, unless mixed
    bfloat16 can pay (a GPU, or a CPU that does bfloat16 in hardware) and trains at least
    PRECISION_MARGIN times faster in a short trial of each on this model and data. Only on one
    device: workers timing apart could choose differently, so distributed runs take float32."""
    from lstm_textgen.model import bfloat16_native, split_dataset, steps_per_second
    import tensorflow as tf

    if params["precision"] != "auto":
        return params["precision"], {}
    if params["distribute"] != "one_device" or not (tf.config.list_physical_devices("GPU") or bfloat16_native()):
        return "float32", {}
    if kept := precision_of_checkpoint(folder, fingerprint):
        return kept, {}
    speeds = {}
    for precision in ("float32", "mixed_bfloat16"):
        model, _ = compiled_model(params, len(vocab["tokens"]), precision, steps)
        batches = iter(split_dataset(train, vocab, params["batch_size"], shuffle_seed=params["seed"]))
        speeds[precision] = round(steps_per_second(model, batches, PRECISION_SECONDS) * steps.tokens_per_step)
    faster = speeds["mixed_bfloat16"] >= PRECISION_MARGIN * speeds["float32"]
    return ("mixed_bfloat16" if faster else "float32"), speeds


def set_up(params: dict, vocab: dict, train: dict, spec: dict, branch: str, base: dict | None) -> Setup:
    """The model to train, on the devices there are, in the precision to use; loads TensorFlow,
    through model.py first (it quiets TensorFlow's own start-up log, which must happen before
    anything imports it)."""
    from lstm_textgen.model import device_and_kernel, load_model

    base_model = None
    if base:  # loaded first: a model that cannot be used is refused before anything is timed or built
        path = base["path"]
        again = (f"bring it in again with `dvc update {path}.dvc`" if Path(f"{path}.dvc").is_file() else
                 f"replace it with a model train-lstm saved (`dvc import <base repo> data/models/char.keras -o {path}`)")
        base_model = load_model(path, fix=f"{again}, or set {spec['train_stage']}.init_from to another base model")
    steps, fingerprint = plan(params, train, vocab), checkpoint_fingerprint(params, spec, base)
    precision, speeds = chosen_precision(params, vocab, train, steps, CHECKPOINTS / branch, fingerprint)
    fingerprint["params"]["precision"] = precision
    unigram = unigram_log_shares(train, vocab) if params["unigram_bias"] and not base else None
    model, strategy = compiled_model(params, len(vocab["tokens"]), precision, steps, unigram)
    if base_model:  # a resumed run then loads its checkpoint over these weights
        with strategy.scope():
            model.set_weights(base_model.get_weights())
    return Setup(model, strategy, *device_and_kernel(model, strategy), base_model, steps, precision, speeds,
                 fingerprint)


def where_to_start(setup: Setup, params: dict, spec: dict, branch: str, role: Role,
                   vocab_size: int) -> tuple[int, Best]:
    """The epochs already done and the early-stopping state to go on from: the chief's checkpoint,
    when an interrupted run with the same params and data left one (and, in a multi-worker run,
    every worker starts from the chief's state)."""
    checkpoint, fingerprint = CHECKPOINTS / branch, setup.fingerprint
    done, so_far, saved = 0, Best(None, 0, 0, False), None
    if role.chief:
        done, note = prepare_checkpoint(checkpoint, fingerprint)
        if done and role.count > 1:  # read before anything is shared, so that a failure cannot strand the others
            saved, done, note = readable_training_state(params, vocab_size, checkpoint, setup.steps, fingerprint,
                                                        done, note)
        if note:
            print(note, file=sys.stderr)
        if done:
            so_far = early_stopping_state(logged_val_losses(checkpoint / "live"), params["patience"])
    if role.count > 1:
        every_param = {"params": params, "precision": setup.precision, "data": fingerprint["data"]}
        identity = hashlib.sha256(json.dumps(every_param, sort_keys=True).encode()).hexdigest()
        done, so_far = start_from_the_chiefs_state(setup.model, setup.strategy, saved, done, so_far, identity,
                                                   spec["train_stage"])
    return done, so_far


def fit(setup: Setup, params: dict, vocab: dict, train: dict, val: dict, branch: str, role: Role, done: int,
        so_far: Best, base: dict | None) -> float:
    """Keras' fit from epoch `done` on, with the callbacks that make a kill resumable: the
    checkpoint, DVCLive's log of every epoch (beside the checkpoint, so a resumed run keeps the
    earlier epochs) and early stopping carried across kills. Returns the seconds trained.
    Fine-tuning also records in `base` what the base model scores here before any training."""
    from lstm_textgen.model import EpochSeeds, TokenBudget, split_dataset  # before keras: it quiets TensorFlow's log
    import keras
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    checkpoint, batch, steps = CHECKPOINTS / branch, params["batch_size"], setup.steps
    callbacks = [EpochSeeds(), *resumable_early_stopping(params["patience"] or params["epochs"],
                                                         checkpoint if role.chief else None, done, so_far)]
    if params["ema"]:  # validation (and so early stopping) scores the moving average of the weights
        callbacks.insert(0, keras.callbacks.SwapEMAWeights())
    if steps.budget_steps:
        callbacks.append(TokenBudget(steps.budget_steps))
    if role.chief:
        live = Live(str(checkpoint / "live"), resume=bool(done), dvcyaml=False, save_dvc_exp=False)
        if done:
            live.step = done  # the next epoch's row; DVCLive's own guess is off by one after epoch 1
        # DVCLive logs an epoch before BackupAndRestore records it: a run killed in between has
        # logged one epoch too many, which keep_logged_epochs drops, never one too few.
        callbacks[:0] = [DVCLiveCallback(live=live),
                         keras.callbacks.BackupAndRestore(str(checkpoint / "backup"), double_checkpoint=True,
                                                          delete_checkpoint=False)]
    spent = steps.budget_steps is not None and done * steps.steps_per_epoch >= steps.budget_steps
    over = so_far.stop or done >= params["epochs"] or spent
    if done and over:
        why = (f"patience {params['patience']} ran out" if so_far.stop else
               f"max_tokens: {params['max_tokens']:,} trained" if spent else f"epochs: {params['epochs']} reached")
        print(f"the interrupted run had finished ({why}); keeping its best epoch, {so_far.epoch + 1}", file=sys.stderr)
    if base and role.chief:
        setup.base_model.compile(loss=setup.model.loss)
        base["val_loss"] = float(setup.base_model.evaluate(split_dataset(val, vocab, batch), verbose=0))
        print(f"the base model {base['path']}: {base['val_loss']:.4f} nats/{vocab.get('unit', 'char')} on the "
              "held-out text before fine-tuning", file=sys.stderr)
    started = time.monotonic()
    setup.model.fit(
        # Epochs from `done` on, each in the order the uninterrupted run gave it.
        split_dataset(train, vocab, batch, shuffle_seed=params["seed"], first_epoch=done),
        steps_per_epoch=steps.steps_per_epoch,
        validation_data=split_dataset(val, vocab, batch),
        # A run that is over trains no epoch; the callbacks still load its best weights.
        initial_epoch=done, epochs=done if over else params["epochs"], verbose=2 if role.chief else 0,
        shuffle=False,  # the dataset shuffles itself
        callbacks=callbacks)
    return time.monotonic() - started


def summary(setup: Setup, live_dir: Path, params: dict, stage: str, vocab: dict, done: int,
            seconds: float, role: Role, base: dict | None) -> dict:
    """The scores, from the log of every epoch (before and after a resume), and how training ran."""
    from lstm_textgen.model import steps_taken

    val_losses = logged_val_losses(live_dir)
    final = early_stopping_state(val_losses, params["patience"])
    best, unit = final.loss, vocab.get("unit", "char")
    if not math.isfinite(best):
        raise UserError(f"training diverged (validation loss {best}); lower {stage}.learning_rate")
    steps = steps_taken(setup.model)
    ran = steps - done * setup.steps.steps_per_epoch  # by this process (a resumed run: after the checkpoint)
    scores = {"best_val_loss": best, f"best_val_bits_per_{unit}": best / math.log(2),
              "best_val_perplexity": math.exp(best), "best_epoch": final.epoch + 1,
              "epochs_run": len(val_losses), "resumed_after_epoch": done, "train_seconds": round(seconds, 1),
              "tokens_trained": round(steps * setup.steps.tokens_per_step),
              "tokens_per_second": round(ran * setup.steps.tokens_per_step / seconds) if ran > 0 else 0,
              "device": setup.device, "replicas": setup.strategy.num_replicas_in_sync, "workers": role.count,
              "lstm_kernel": setup.kernel, "precision": setup.precision}
    scores |= {f"tokens_per_second_{precision}_trial": speed for precision, speed in setup.speeds.items()}
    if base:
        scores["base_val_loss"] = base["val_loss"]
    return scores


def headline(scores: dict, branch: str) -> dict:
    """What metrics/train/<branch>/metrics.json holds, the scores `dvc metrics show` and `dvc exp
    show` list (run.json beside it holds all of `scores`): the best validation loss, in bits per
    token and as perplexity, rounded, under the branch's name so that no column name is shared."""
    return {branch: {key.removeprefix("best_"): round(value, 4) for key, value in scores.items()
                     if key.startswith("best_val_")}}
