"""The model, its optimizer, its input pipeline and its device strategy: train-lstm's, the only
stage that imports TensorFlow (the sampler runs on the weights it saves as NumPy arrays)."""

import contextlib
import os
import re
import sys
import tempfile
import time

# TensorFlow's own C++ logging: 2 drops its INFO and WARNING lines and keeps its errors (3 drops
# those too, 0 shows everything). Read when TensorFlow loads, so it must be set before anything
# imports it; a value set in the environment wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Lines TensorFlow's native libraries write to stderr while loading: abseil's logger, not yet
# initialised, prints every record whatever TF_CPP_MIN_LOG_LEVEL says, announced by this line.
ABSL_UNINITIALIZED = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# A glog/abseil record: severity, MMDD, time (abseil's, before initialisation, "00:00:<unix time>"), thread, file:line]
NATIVE_RECORD = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
PYTHON_WARNING = re.compile(r"\S+:\d+: \w*Warning: ")
NO_DRIVER = "Could not find cuda drivers on your machine"
CUINIT_FAILED = "failed call to cuInit"


def startup_log_that_matters(text: str, min_level: int = 2) -> str:
    """What of the native start-up log `text` to show: the records TF_CPP_MIN_LOG_LEVEL
    `min_level` lets through (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL only; each record with its
    continuation lines), and anything else (a Python warning, say). Dropped, at 1 and above:
    abseil's announcement that it logs everything; and the failed cuInit of a machine with no
    CUDA driver at all, which is how TensorFlow finds there is no GPU, not a failure (with a
    driver, the same error means a GPU that does not work, and is kept)."""
    if min_level < 1:
        return text
    no_driver = NO_DRIVER in text
    kept, keeping = [], True
    for line in text.splitlines(keepends=True):
        record = NATIVE_RECORD.match(line)
        if line.rstrip("\r\n") == ABSL_UNINITIALIZED:
            keeping = False
            continue
        if record:
            severity = "IWEF".index(record.group(1))
            keeping = severity >= min_level and not (no_driver and CUINIT_FAILED in line)
        elif PYTHON_WARNING.match(line):
            keeping = True
        if keeping:
            kept.append(line)
    return "".join(kept)


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def native_startup_log_filtered():
    """Run the block with file descriptor 2 (where C++ writes) sent to a temporary file, then
    replay to stderr what startup_log_that_matters keeps: everything if the block raised."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            text = log.read().decode("utf-8", "replace")
            shown = text if failed else startup_log_that_matters(text, _min_log_level())
            if shown:
                sys.stderr.write(shown)
                sys.stderr.flush()


with native_startup_log_filtered():
    import keras
    import tensorflow as tf

    tf.config.list_physical_devices("GPU")  # loads the CUDA platform (and logs its cuInit) now, not mid-run

import numpy as np  # noqa: E402

from lstm_textgen.cpu_lstm import CpuLSTM  # noqa: E402
from lstm_textgen.errors import UserError  # noqa: E402
from lstm_textgen.files import spans  # noqa: E402
from lstm_textgen.shuffle import shuffled_windows  # noqa: E402


def build_model(vocab_size: int, embedding_dim: int, units: int, layers: int, dropout: float,
                lstm_layer: type = keras.layers.LSTM) -> keras.Model:
    """Token ids → embedding → `layers` × LSTM → logits over the vocabulary at every position.
    `lstm_layer` CpuLSTM trains the same layer with a faster loop on a CPU (cpu_lstm.py)."""
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(tokens)
    for i in range(1, layers + 1):
        # Defaults on purpose (tanh, sigmoid, no recurrent_dropout, unroll=False): that is what
        # lets Keras run the layer on the cuDNN kernel when a GPU is present. Dropout goes
        # between layers instead.
        x = lstm_layer(units, return_sequences=True, name=f"lstm_{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    # float32 under mixed precision too, as Keras advises for a model's last layer: bfloat16's
    # 8-bit mantissa would blur the very loss that is minimised and compared.
    logits = keras.layers.Dense(vocab_size, dtype="float32", name="logits")(x)
    return keras.Model(tokens, logits, name="lstm_textgen")


def portable(model: keras.Model) -> keras.Model:
    """The trained model as the file train-lstm saves: Keras' own LSTM layers in float32 (loadable
    anywhere, cuDNN-eligible), the same weights; trained under mixed precision or with CpuLSTM too."""
    shape, layers = model.get_layer("embedding").get_config(), lstm_layers(model)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        plain = build_model(shape["input_dim"], shape["output_dim"], layers[0].units, len(layers),
                            model.get_layer("dropout_1").rate)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    plain.set_weights(model.get_weights())
    return plain


class TokenSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate after `step` updates, counted in tokens (step × `tokens_per_step`), so
    that a run is the same run whatever its speed: a linear warmup to `rate` over `warmup`
    tokens; `rate` until `decay_after` tokens, then halving every `half_life` tokens (null: never
    decays); with `cooldown` a share of `budget` tokens, all that falls linearly to 0 over the
    budget's last share."""

    def __init__(self, rate: float, tokens_per_step: float, warmup: int = 0, decay_after: int | None = None,
                 half_life: int | None = None, cooldown: float = 0.0, budget: int | None = None):
        self.rate, self.tokens_per_step, self.warmup = rate, tokens_per_step, warmup
        self.decay_after, self.half_life, self.cooldown, self.budget = decay_after, half_life, cooldown, budget

    def __call__(self, step):
        ops = keras.ops
        tokens = ops.cast(step, "float64") * self.tokens_per_step  # trained before this update
        factor = ops.ones((), "float64")
        if self.warmup:
            factor = factor * ops.minimum(1.0, (tokens + self.tokens_per_step) / self.warmup)
        if self.half_life:
            factor = factor * ops.power(0.5, ops.maximum(0.0, tokens - (self.decay_after or 0)) / self.half_life)
        if self.cooldown and self.budget:
            length = self.cooldown * self.budget
            factor = factor * ops.clip((self.budget - tokens) / length, 0.0, 1.0)
        return ops.cast(self.rate * factor, "float32")

    def get_config(self):
        return {"rate": self.rate, "tokens_per_step": self.tokens_per_step, "warmup": self.warmup,
                "decay_after": self.decay_after, "half_life": self.half_life, "cooldown": self.cooldown,
                "budget": self.budget}


def averaged_weights(model: keras.Model) -> list[np.ndarray]:
    """model.get_weights(), but the optimizer's moving average of each weight where it keeps one
    (Adam's use_ema): the weights train-lstm scores, keeps and saves."""
    optimizer = model.optimizer
    if not getattr(optimizer, "use_ema", False) or not optimizer.built:
        return model.get_weights()
    average = {v.path: a for v, a in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average)}
    return [np.asarray(keras.ops.convert_to_numpy(average.get(w.path, w))) for w in model.weights]


def bfloat16_native() -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware (x86: avx512_bf16 or AMX); elsewhere
    mixed_bfloat16 is emulated, and slow."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def steps_per_second(model: keras.Model, batches, seconds: float, most: int = 500) -> float:
    """Training steps per second on `batches` (an iterator), timed over `seconds` or `most` steps
    after one untimed step (in which TensorFlow traces the model)."""
    model.train_on_batch(*next(batches))
    steps, started = 0, time.monotonic()
    while steps < most and time.monotonic() - started < seconds:
        model.train_on_batch(*next(batches))
        steps += 1
    return steps / (time.monotonic() - started)


def steps_taken(model: keras.Model) -> int:
    """The optimizer's updates so far (read through the variable's first copy when mirrored)."""
    value = model.optimizer.iterations.value
    return int(np.asarray(getattr(value, "primary", value).numpy()))


@contextlib.contextmanager
def holding_averaged_weights(model: keras.Model):
    """Within the block, the model holds averaged_weights(model); its own weights again after, exactly."""
    own = model.get_weights()
    model.set_weights(averaged_weights(model))
    try:
        yield
    finally:
        model.set_weights(own)


class TokenBudget(keras.callbacks.Callback):
    """Stops training once the optimizer has made `steps` updates, mid-epoch if need be (Keras
    then still validates that epoch): train-lstm's max_tokens."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_begin(self, logs=None):
        # Read the optimizer's counter once (a resumed run starts past 0), then count here:
        # reading it after every batch would wait on the device each step.
        self.taken = steps_taken(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.taken += 1
        if self.taken >= self.steps:
            self.model.stop_training = True


class EpochSeeds(keras.callbacks.Callback):
    """Starts every epoch with each seed generator of the model (Dropout draws its masks from
    them) in a state made from its initial seed and the epoch alone. BackupAndRestore saves
    weights, not these states, so without this a resumed run would draw other masks than the
    uninterrupted run did from the same epoch on."""

    def on_train_begin(self, logs=None):
        # A generator's state is [seed, calls so far]; the seed comes from keras.utils.set_random_seed.
        self.states = [v for v in self.model.variables if v.name == "seed_generator_state"]
        self.seeds = [int(keras.ops.convert_to_numpy(v)[0]) for v in self.states]

    def on_epoch_begin(self, epoch, logs=None):
        # The n-th draw of the epoch then uses [seed + epoch, n]: no two draws of a generator share one.
        for state, seed in zip(self.states, self.seeds):
            state.assign(np.array([seed + epoch, 0], dtype=np.int64))


def lstm_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]


def cudnn_problems(model: keras.Model) -> list[str]:
    """Why each LSTM layer could not use the cuDNN kernel (empty when all can). Mirrors the
    conditions Keras checks before choosing the kernel; runs without a GPU."""
    problems = []
    for layer in lstm_layers(model):
        cell = layer.cell
        checks = {"activation is tanh": cell.activation is keras.activations.tanh,
                  "recurrent_activation is sigmoid": cell.recurrent_activation is keras.activations.sigmoid,
                  "recurrent_dropout is 0": not cell.recurrent_dropout,
                  "unroll is False": not layer.unroll,
                  "use_bias is True": cell.use_bias,
                  "use_cudnn allows it": layer.use_cudnn in ("auto", True)}
        problems += [f"{layer.name}: needs {name}" for name, ok in checks.items() if not ok]
    return problems


def distribution(name: str) -> tf.distribute.Strategy:
    """How training spreads over devices. `one_device`: TensorFlow's default placement (the
    first GPU, else the CPU). `mirrored`: tf.distribute's MirroredStrategy, a copy of the model
    on every GPU (every logical CPU when there is no GPU), each taking a slice of every batch,
    gradients summed across them before each update. `multi_worker`: MultiWorkerMirroredStrategy,
    the same over several machines, which it finds in the TF_CONFIG environment variable (check it
    first: train_lstm.worker_role); TensorFlow needs it made before anything else runs on a device."""
    if name == "one_device":
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        with native_startup_log_filtered():  # the cluster's start-up chatter (gRPC, coordination service)
            return tf.distribute.MultiWorkerMirroredStrategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def fit_across_workers(model: keras.Model, strategy: tf.distribute.MultiWorkerMirroredStrategy) -> None:
    """Let `model.fit` run under MultiWorkerMirroredStrategy, which Keras 3 (3.15) trips over in
    two places (keras-team/keras#20585 and tensorflow/tensorflow#72388, both open):
    - before training it builds the loss and optimizer on a first batch, averaged over the
      replicas with one strategy.reduce of the whole (inputs, targets) pair, which this strategy
      refuses: only shapes and types matter there, so build on this worker's share of the batch;
    - after every step it averages each logged value over the workers along axis 0, which a
      scalar (the loss) does not have: average scalars across workers along no axis.
    Both are narrow patches of Keras' private API; tests/test_multi_worker.py trains two real
    workers, so an upgrade that breaks them fails there."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build
    reduce_per_replica = trainer.reduce_per_replica

    def reduce_scalars_across_workers(values, strategy, reduction="auto"):
        def one(v):
            if reduction in ("auto", "mean") and strategy.experimental_local_results(v)[0].shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return reduce_per_replica(v, strategy, reduction)
        return tree.map_structure(one, values)

    if not getattr(reduce_per_replica, "patched", False):
        reduce_scalars_across_workers.patched = True
        trainer.reduce_per_replica = reduce_scalars_across_workers


def on_any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """Whether `flag` is true on any worker: every worker calls this and gets the same answer,
    so that all of them stop together rather than some waiting forever for the others."""
    @tf.function
    def share():
        return tf.distribute.get_replica_context().all_reduce("sum", tf.constant(float(flag)))

    return float(strategy.experimental_local_results(strategy.run(share))[0]) > 0


def from_the_chief(strategy: tf.distribute.Strategy, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The chief's `arrays` on every worker (each worker passes arrays of the same shapes): a sum
    over all replicas to which only the first, the chief's, contributes. This is how a resumed
    multi-worker run gives every worker the state only the chief keeps on disk. Sent as float64,
    which holds float32 weights and integer counters (below 2**53) exactly."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]

    @tf.function
    def share():
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)
        return [context.all_reduce("sum", tf.where(first, a, tf.zeros_like(a))) for a in map(tf.constant, arrays)]

    shared = strategy.run(share)
    return [np.asarray(strategy.experimental_local_results(value)[0]) for value in shared]


def device_and_kernel(model: keras.Model, strategy: tf.distribute.Strategy) -> tuple[str, str]:
    """What trains the model (the GPU's name when there is one, else the CPU; "N × …" when
    mirrored over N replicas) and which LSTM kernel: cudnn, cpu_loop (CpuLSTM's) or generic
    (Keras' own loop)."""
    replicas = strategy.num_replicas_in_sync
    times = f"{replicas} × " if replicas > 1 else ""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        layers = lstm_layers(model)
        fast = layers and all(isinstance(layer, CpuLSTM) and layer.fast_loop(None) for layer in layers)
        return f"{times}CPU", "cpu_loop" if fast else "generic"
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    return f"{times}GPU ({name}, {len(gpus)} visible)", "generic" if cudnn_problems(model) else "cudnn"


def epoch_batches(items: np.ndarray, batch_size: int, shuffle_seed: int | None = None,
                  first_epoch: int = 0) -> tf.data.Dataset:
    """Batches of `items` (along the first axis). Without a seed: one pass, in order. With one:
    an endless run of epochs from `first_epoch` on, epoch e in an order drawn from
    (shuffle_seed, e) alone, so that a resumed run sees each epoch in the order an uninterrupted
    one would have (tf.data's shuffle would draw it from the epochs this process has run). Fit
    it with steps_per_epoch = ceil(len(items) / batch_size)."""
    items = tf.constant(items)
    if shuffle_seed is None:
        return tf.data.Dataset.from_tensor_slices(items).batch(batch_size)

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(items, seed=tf.stack([tf.constant(shuffle_seed, tf.int64), e]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    return tf.data.Dataset.counter(first_epoch).flat_map(epoch)


def window_dataset(split: dict, batch_size: int, shuffle_seed: int | None = None,
                   first_epoch: int = 0) -> tf.data.Dataset:
    """Batches of (inputs, targets) read batch by batch from the split's text file (`tokens`, a
    MappedVector; window i starts at i * `step`): a window is tokens[s : s+seq_length]
    and its targets the same span shifted by one. Nothing as long as the text is ever held, so
    training's memory is the same for a book and a shelf. Without a seed: one pass, in order.
    With one: an endless run of epochs from `first_epoch` on, epoch e in the order
    shuffled_windows draws from (shuffle_seed, e) alone. Fit it with
    steps_per_epoch = ceil(windows / batch_size)."""
    tokens, n, step, length = split["tokens"], split["windows"], split["step"], split["seq_length"] + 1
    if n < 1:
        raise ValueError("a split without windows: its epochs would never end")

    def gather(epoch, positions):  # in NumPy: the file is read where the batch's windows are
        picked = positions if shuffle_seed is None else shuffled_windows(positions, n, shuffle_seed, int(epoch))
        return spans(tokens, picked * step, length)  # the file's, or a text in memory (the benchmarks')

    def windows(epoch, positions):
        rows = tf.numpy_function(gather, [epoch, positions], tf.as_dtype(tokens.dtype), stateful=False)
        rows = tf.cast(tf.ensure_shape(rows, [None, length]), tf.int32)  # stored a byte a char: widened per batch
        return rows[:, :-1], rows[:, 1:]

    def epoch(e):  # the batch op stays visible to tf.distribute, which splits batches between replicas
        return tf.data.Dataset.range(n).batch(batch_size).map(lambda positions: (e, positions))

    ds = epoch(tf.constant(0, tf.int64)) if shuffle_seed is None else tf.data.Dataset.counter(first_epoch).flat_map(epoch)
    return ds.map(windows, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def rows_dataset(rows: np.ndarray, pad_id: int, batch_size: int, shuffle_seed: int | None = None,
                 first_epoch: int = 0) -> tf.data.Dataset:
    """Batches of (inputs, targets, weights) from right-padded rows: inputs row[:-1], targets
    row[1:], and weight 0 where the target is padding. Epochs as epoch_batches."""
    def split(batch):
        targets = batch[:, 1:]
        return batch[:, :-1], targets, tf.cast(targets != pad_id, tf.float32)

    ds = epoch_batches(rows.astype(np.int32), batch_size, shuffle_seed, first_epoch)
    return ds.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def split_dataset(split: dict, vocab: dict, batch_size: int, shuffle_seed: int | None = None,
                  first_epoch: int = 0) -> tf.data.Dataset:
    """The dataset for one split in either form load_split returns."""
    if "rows" in split:
        return rows_dataset(split["rows"], vocab["tokens"].index(vocab["pad"]), batch_size, shuffle_seed, first_epoch)
    return window_dataset(split, batch_size, shuffle_seed, first_epoch)


def load_model(path, train_stage: str = "train-lstm", fix: str | None = None) -> keras.Model:
    """Load a saved model as data, not code: safe_mode refuses files that carry serialized
    Python (a Lambda layer, say), which a model from a shared remote must never run. `fix`
    says what to do when it cannot be loaded (default: rebuild it with `train_stage`)."""
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (OSError, ValueError, TypeError) as err:
        if "safe_mode" in str(err):
            raise UserError(f"refusing {path}: it carries serialized Python code, which would run on loading "
                            f"({str(err).split('.')[0]}). Models here are data; "
                            + (fix or f"rebuild it with `dvc repro -f {train_stage}`"))
        raise UserError(f"cannot load model {path} ({err}); "
                        + (fix or f"run `dvc checkout {path}` or `dvc repro -f {train_stage}`"))


def sampler_weights(model: keras.Model) -> dict:
    """The trained weights as named NumPy arrays, the form sampling.Stepper runs on (saved by
    train-lstm as data/models/<branch>.npz beside the .keras file)."""
    weights = lambda layer: [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]  # noqa: E731
    arrays = {"embedding": weights(model.get_layer("embedding"))[0]}
    for i, layer in enumerate(lstm_layers(model), 1):
        arrays[f"lstm_{i}_kernel"], arrays[f"lstm_{i}_recurrent_kernel"], arrays[f"lstm_{i}_bias"] = weights(layer)
    arrays["logits_kernel"], arrays["logits_bias"] = weights(model.get_layer("logits"))
    return arrays
