"""The model and what runs it: shared by train-lstm and sample, the only stages that import
TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the logs

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import UserError  # noqa: E402


def build_model(vocab_size: int, embedding_dim: int, units: int, layers: int, dropout: float) -> keras.Model:
    """Token ids → embedding → `layers` × LSTM → logits over the vocabulary at every position."""
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(tokens)
    for i in range(1, layers + 1):
        # Defaults on purpose (tanh, sigmoid, no recurrent_dropout, unroll=False): that is what
        # lets Keras run the layer on the cuDNN kernel when a GPU is present. Dropout goes
        # between layers instead.
        x = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(tokens, logits, name="lstm_textgen")


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
    gradients summed across them before each update."""
    if name == "one_device":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def device_and_kernel(model: keras.Model, strategy: tf.distribute.Strategy) -> tuple[str, str]:
    """What trains the model (the GPU's name when there is one, else the CPU; "N × …" when
    mirrored over N replicas) and which LSTM kernel."""
    replicas = strategy.num_replicas_in_sync
    times = f"{replicas} × " if replicas > 1 else ""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"{times}CPU", "generic"
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    return f"{times}GPU ({name}, {len(gpus)} visible)", "generic" if cudnn_problems(model) else "cudnn"


def window_dataset(tokens: np.ndarray, starts: np.ndarray, seq_length: int, batch_size: int,
                   shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of (inputs, targets) gathered from one copy of the text on the fly: a window is
    tokens[s : s+seq_length] and its targets the same span shifted by one."""
    text = tf.constant(tokens.astype(np.int32))
    offsets = tf.range(seq_length + 1, dtype=tf.int64)
    ds = tf.data.Dataset.from_tensor_slices(starts.astype(np.int64))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(starts), seed=shuffle_seed, reshuffle_each_iteration=True)

    def gather(batch_starts):
        windows = tf.gather(text, batch_starts[:, None] + offsets)
        return windows[:, :-1], windows[:, 1:]

    return ds.batch(batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def rows_dataset(rows: np.ndarray, pad_id: int, batch_size: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of (inputs, targets, weights) from right-padded rows: inputs row[:-1], targets
    row[1:], and weight 0 where the target is padding."""
    ds = tf.data.Dataset.from_tensor_slices(rows.astype(np.int32))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(rows), seed=shuffle_seed, reshuffle_each_iteration=True)

    def split(batch):
        targets = batch[:, 1:]
        return batch[:, :-1], targets, tf.cast(targets != pad_id, tf.float32)

    return ds.batch(batch_size).map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def split_dataset(split: dict, vocab: dict, batch_size: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """The dataset for one split in either form load_split returns."""
    if "rows" in split:
        return rows_dataset(split["rows"], vocab["tokens"].index(vocab["pad"]), batch_size, shuffle_seed)
    return window_dataset(split["tokens"], split["starts"], split["seq_length"], batch_size, shuffle_seed)


def targets_per_epoch(split: dict, vocab: dict) -> int:
    """How many tokens one epoch over this split predicts (padding excluded)."""
    if "rows" in split:
        return int(np.count_nonzero(split["rows"][:, 1:] != vocab["tokens"].index(vocab["pad"])))
    return len(split["starts"]) * split["seq_length"]


def load_model(path, train_stage: str = "train-lstm") -> keras.Model:
    """Load a saved model as data, not code: safe_mode refuses files that carry serialized
    Python (a Lambda layer, say), which a model from a shared remote must never run."""
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (OSError, ValueError, TypeError) as err:
        if "safe_mode" in str(err):
            raise UserError(f"refusing {path}: it carries serialized Python code, which would run on loading "
                            f"({str(err).split('.')[0]}). Models here are data; rebuild it with "
                            f"`dvc repro -f {train_stage}`")
        raise UserError(f"cannot load model {path} ({err}); run `dvc checkout {path}` or `dvc repro -f {train_stage}`")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5  # = 1 / (1 + e^-x), without overflow


class Stepper:
    """Runs a trained model one token at a time, carrying each LSTM layer's (h, c) state, so
    generating a token costs one step, not a pass over the whole window as in the tutorial.

    The step is plain NumPy on the trained weights: a step is a few small matrix products, and
    at batch 1 calling into TensorFlow for each would cost more than the arithmetic. A test
    checks it against the Keras model run over whole sequences."""

    def __init__(self, model: keras.Model):
        weights = lambda layer: [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]  # noqa: E731
        self.embeddings, = weights(model.get_layer("embedding"))
        self.lstms = [weights(layer) for layer in lstm_layers(model)]  # kernel, recurrent_kernel, bias
        self.out_kernel, self.out_bias = weights(model.get_layer("logits"))

    def initial_state(self, batch: int) -> list:
        return [(np.zeros((batch, kernel.shape[1] // 4), np.float32),) * 2 for kernel, _, _ in self.lstms]

    def step(self, token_ids: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """Feed one token per row; return the logits for the next token and the new state."""
        x = self.embeddings[np.asarray(token_ids)]
        new_state = []
        for (kernel, recurrent_kernel, bias), (h, c) in zip(self.lstms, state):
            # Keras' gate order: input, forget, candidate, output.
            i, f, g, o = np.split(x @ kernel + h @ recurrent_kernel + bias, 4, axis=-1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            x = h = _sigmoid(o) * np.tanh(c)
            new_state.append((h, c))
        return x @ self.out_kernel + self.out_bias, new_state
