"""Sampling: running a trained model one token at a time and drawing each next token, on the
weights train-lstm saves beside the model (data/models/<branch>.npz), so neither the sample stage
nor `lstm-textgen generate` imports TensorFlow. The step and the draw are a little C, compiled on
first use by the machine's C compiler; where there is none, the same step and draw in NumPy take
over (slower, and said once on stderr), drawing the same text for the same seed up to float32
rounding (below). Also the sample texts each branch's sample stage writes."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from lstm_textgen.errors import UserError
from lstm_textgen.cleaning import clean_headline, clean_text
from lstm_textgen.text_measures import char_metrics, headline_metrics, known_words, words
from lstm_textgen.vocab import decode_chars, encode_chars, encode_words

# At batch 1 a step is a few small products, too small for NumPy: each NumPy call costs more than
# its arithmetic (about 7,000 chars/s). Compiled, a step is bound by streaming the weights in from
# L3. C rather than numba, which is as fast but takes some 0.7 s to import on every start.
_C_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* tanh as a rational function (Eigen's float tanh, within a few float32 ulps): unlike libm's, it
   vectorises, so a layer's 1,280 tanh take a microsecond or two. */
static inline float tanh_(float x) {
    x = x < -7.90531110f ? -7.90531110f : x > 7.90531110f ? 7.90531110f : x;
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
}

/* z = b + x @ w, for x of n and w of (n, m) stored as m / PANEL panels of (n, PANEL) one after
   another (m padded with zeros to a multiple of PANEL): w is read front to back, each weight
   once, and a panel's sums stay in registers. The weights are too big for L2, so this is the
   step's time: about the time to stream them in from L3. */
static void affine(const float *restrict x, int n, const float *restrict w, const float *restrict b,
                   float *restrict z, int m) {
    for (int p = 0; p < m; p += PANEL, w += (size_t)n * PANEL) {
        float sums[PANEL];
        for (int c = 0; c < PANEL; c++) sums[c] = b[p + c];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < PANEL; c++) sums[c] += x[i] * w[(size_t)i * PANEL + c];
        for (int c = 0; c < PANEL; c++) z[p + c] = sums[c];
    }
}

static int padded(int m) { return (m + PANEL - 1) / PANEL * PANEL; }

/* What the functions below read: rows of tokens, their model's weights (laid out by Stepper)
   and state, and the draw's settings; sampling.py's _Batch fills it. */
typedef struct {
    int layers, vocab, rows;
    const int64_t *units;
    float *const *kernels;
    float *const *tables;
    const float *out_kernel;
    const float *out_bias;
    double inv_temperature, top_p;
    int top_k, n_banned;
    const int64_t *banned;
    int64_t end_id;                /* -1: none */
    int64_t *tokens;               /* a token per row: the step's input, the draw's output */
    float *state;
    float *logits;
    unsigned char *ended;          /* per row: has it drawn end_id? */
} batch_t;

/* Stepper.step, in place: each row's token in, its state updated, its logits out. A state row
   holds every layer's h, then every layer's c, so a layer's input [x, h] (the new h of the layer
   below, its own old h) is one slice of it. */
void sampler_step(const batch_t *b) {
    int h_size = 0, widest = 0;
    for (int l = 0; l < b->layers; l++) {
        h_size += b->units[l];
        widest = b->units[l] > widest ? b->units[l] : widest;
    }
    float z[padded(4 * widest) > padded(b->vocab) ? padded(4 * widest) : padded(b->vocab)];
    for (int r = 0; r < b->rows; r++) {
        float *s = b->state + (size_t)r * 2 * h_size;
        int start = 0, below = 0;
        for (int l = 0; l < b->layers; l++) {
            int u = b->units[l];
            const float *table = b->tables[l] + (l ? 0 : b->tokens[r] * padded(4 * u));
            affine(s + start - below, below + u, b->kernels[l], table, z, padded(4 * u));
            float *h = s + start, *c = s + h_size + start;
            for (int j = 0; j < u; j++) {  /* gates: input, forget, output (halved: sigmoid), candidate */
                c[j] = (tanh_(z[u + j]) + 1) / 2 * c[j] + (tanh_(z[j]) + 1) / 2 * tanh_(z[3 * u + j]);
                h[j] = (tanh_(z[2 * u + j]) + 1) / 2 * tanh_(c[j]);
            }
            start += u;
            below = u;
        }
        affine(s + start - below, below, b->out_kernel, b->out_bias, z, padded(b->vocab));
        memcpy(b->logits + (size_t)r * b->vocab, z, b->vocab * sizeof *z);
    }
}

typedef struct { double w; int id; } ranked_t;

static int most_likely_first(const void *x, const void *y) {  /* ties by id, as a stable sort has them */
    const ranked_t *a = x, *b = y;
    return a->w > b->w ? -1 : a->w < b->w ? 1 : a->id - b->id;
}

/* sample_next, in place: each row's logits in, with u, a uniform number per row; its token out. */
void sampler_draw(const batch_t *b, const double *u) {
    int vocab = b->vocab, top_k = b->top_k > 0 && b->top_k < vocab ? b->top_k : 0;
    double *w = malloc(vocab * sizeof *w);
    ranked_t *ranked = malloc(vocab * sizeof *ranked);
    for (int r = 0; r < b->rows; r++) {
        for (int i = 0; i < vocab; i++) w[i] = b->logits[(size_t)r * vocab + i] * b->inv_temperature;
        for (int i = 0; i < b->n_banned; i++) w[b->banned[i]] = -INFINITY;
        if (top_k || b->top_p < 1) {
            for (int i = 0; i < vocab; i++) ranked[i] = (ranked_t){w[i], i};
            qsort(ranked, vocab, sizeof *ranked, most_likely_first);
        }
        if (top_k)  /* out: the tokens below the k-th most likely (the banned ones rank last) */
            for (int i = 0; i < vocab; i++)
                if (w[i] < ranked[top_k - 1].w) w[i] = -INFINITY;
        double top = -INFINITY, total = 0, above = 0, running = 0;
        for (int i = 0; i < vocab; i++) top = w[i] > top ? w[i] : top;
        for (int i = 0; i < vocab; i++) total += w[i] = exp(w[i] - top);
        if (b->top_p < 1) {  /* a token stays if the tokens ranked above it hold less than top_p */
            double limit = b->top_p * total;
            for (int i = 0; i < vocab; i++) {
                double p = w[ranked[i].id];
                if (above >= limit) {
                    w[ranked[i].id] = 0;
                    total -= p;
                }
                above += p;
            }
        }
        /* inverse-CDF draw on the unnormalised weights: the first token whose running total passes
           u times the total (or the last one drawable, should rounding leave it short) */
        for (int i = 0; i < vocab; i++)
            if (w[i] > 0) {
                b->tokens[r] = i;
                if ((running += w[i]) > u[r] * total) break;
            }
    }
    free(w);
    free(ranked);
}

/* n times: a step, then a draw with the next row of u (n, rows), the tokens into the next row of
   out. Stops early once every row has drawn end_id; returns the draws made. */
int sampler_run(const batch_t *b, int n, const double *u, int64_t *out) {
    for (int t = 0; t < n; t++) {
        sampler_step(b);
        sampler_draw(b, u + (size_t)t * b->rows);
        int all_ended = 1;
        for (int r = 0; r < b->rows; r++) {
            out[(size_t)t * b->rows + r] = b->tokens[r];
            b->ended[r] |= b->tokens[r] == b->end_id;
            all_ended &= b->ended[r];
        }
        if (all_ended) return t + 1;
    }
    return n;
}
"""
_PANEL = 64  # outputs summed together in affine: 8 AVX registers' worth
# (-fno-trapping-math lets the tanh loops vectorise)
_C_FLAGS = ["-O3", "-march=native", "-fno-trapping-math", f"-DPANEL={_PANEL}", "-shared", "-fPIC"]


def _cpu() -> str:
    """The CPU -march=native compiles for: a library built on one CPU may not run on another that
    shares the folder."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = platform.processor()
    return platform.machine() + next((line for line in info.splitlines() if line.startswith(("flags", "Features"))),
                                     info)


# False: the NumPy step and draw, even where the C builds (tests and benchmarks compare the two).
USE_C = True


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The C above as a shared library, built by the C compiler ($CC, else cc) into __pycache__
    once per source, flags, CPU and compiler (a fraction of a second), then only loaded; None where it cannot be
    built (no compiler, $CC empty or broken), after saying so once: the NumPy step then runs."""
    compiler = os.environ.get("CC", "cc").strip()
    if not compiler:
        return _without_c("$CC is empty")
    digest = hashlib.sha256("\n".join([_C_SOURCE, *_C_FLAGS, _cpu(), compiler]).encode()).hexdigest()[:16]
    path = Path(__file__).with_name("__pycache__") / f"sampling-{digest}.so"
    if not path.exists():
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # renamed when whole, for concurrent starts
        try:
            path.parent.mkdir(exist_ok=True)
            subprocess.run([*shlex.split(compiler), *_C_FLAGS, "-x", "c", "-", "-o", str(partial), "-lm"],
                           input=_C_SOURCE, text=True, capture_output=True, check=True)
        except FileNotFoundError:
            return _without_c(f"there is no C compiler `{compiler}`")
        except subprocess.CalledProcessError as err:
            return _without_c(f"`{compiler}` could not compile it ({(err.stderr.strip().splitlines() or ['?'])[-1]})")
        except OSError as err:
            return _without_c(f"it could not be built ({err})")
        if not partial.is_file():
            return _without_c(f"`{compiler}` wrote no library")
        os.replace(partial, path)
    try:
        lib = ctypes.CDLL(str(path))
        batch = ctypes.POINTER(_CBatch)
        lib.sampler_step.argtypes, lib.sampler_step.restype = [batch], None
        lib.sampler_draw.argtypes, lib.sampler_draw.restype = [batch, ctypes.c_void_p], None
        lib.sampler_run.argtypes = [batch, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        lib.sampler_run.restype = ctypes.c_int
    except (OSError, AttributeError) as err:
        path.unlink(missing_ok=True)  # built again next time, not loaded again
        return _without_c(f"what `{compiler}` built does not load ({err})")
    return lib


def _without_c(reason: str) -> None:
    print(f"note: sampling with NumPy, several times slower than the sampler's C step, because {reason}; "
          "for the fast one, install a C compiler (e.g. `apt-get install gcc`) or name one in $CC", file=sys.stderr)
    return None


def compiled() -> ctypes.CDLL | None:
    """The C step and draw, or None for NumPy's."""
    return _library() if USE_C else None


def _token_ids(ids, vocab_size: int) -> np.ndarray:
    """Ids as the C reads them (int64, C order), refused if outside the vocabulary, which the C
    would read past."""
    ids = np.ascontiguousarray(ids, np.int64)
    if ids.size and not 0 <= ids.min() <= ids.max() < vocab_size:
        raise ValueError(f"token ids must be in [0, {vocab_size})")
    return ids


class _CBatch(ctypes.Structure):
    """The C's batch_t, field for field."""
    _fields_ = [*[(name, ctypes.c_int) for name in ("layers", "vocab", "rows")],
                *[(name, ctypes.c_void_p) for name in ("units", "kernels", "tables", "out_kernel", "out_bias")],
                *[(name, ctypes.c_double) for name in ("inv_temperature", "top_p")],
                *[(name, ctypes.c_int) for name in ("top_k", "n_banned")], ("banned", ctypes.c_void_p),
                ("end_id", ctypes.c_int64),
                *[(name, ctypes.c_void_p) for name in ("tokens", "state", "logits", "ended")]]


class _Batch:
    """Rows stepped (with a stepper) and drawn together: their tokens, state and logits, the
    draw's settings, and the C struct that points at them all, so that a call into the C converts
    an argument or a few (ctypes takes some 0.3 µs for each)."""

    def __init__(self, rows: int, vocab: int, stepper=None, temperature=1.0, top_k=None, top_p=None, banned=(),
                 end_id=None):
        self.stepper = stepper  # held, as the arrays are: the C reads them
        self.tokens, self.ended = np.zeros(rows, np.int64), np.zeros(rows, np.bool_)
        self.state = stepper.initial_state(rows) if stepper else np.empty((rows, 0), np.float32)
        self.logits, self.banned = np.empty((rows, vocab), np.float32), _token_ids(banned, vocab)
        self.settings = dict(inv_temperature=1 / temperature, top_k=top_k or 0, top_p=1.0 if top_p is None else top_p,
                             end_id=-1 if end_id is None else end_id)
        fields = _CBatch(vocab=vocab, rows=rows, n_banned=len(self.banned), **self.settings,
                         **{name: getattr(self, name).ctypes.data
                            for name in ("banned", "tokens", "state", "logits", "ended")},
                         **(stepper.c_model if stepper else {}))
        self._c = ctypes.byref(fields)

    def step(self):
        """Each row's token in, its state advanced, its logits out."""
        lib = compiled()
        lib.sampler_step(self._c) if lib else _numpy_step(self)

    def draw(self, u: np.ndarray):
        """Each row's next token, from its logits and u (a uniform number per row), into `tokens`."""
        lib = compiled()
        lib.sampler_draw(self._c, u.ctypes.data) if lib else _numpy_draw(self, u)

    def run(self, u: np.ndarray, out: np.ndarray) -> int:
        """Step and draw len(u) times, with a row of u (uniform numbers, one per row) each time,
        the tokens into the rows of `out` (C order); stop early once every row has drawn the end
        token. Returns the draws made."""
        lib = compiled()
        if lib:
            return lib.sampler_run(self._c, len(u), u.ctypes.data, out.ctypes.data)
        for t, row in enumerate(u):
            self.step()
            self.draw(row)
            out[t] = self.tokens
            self.ended |= self.tokens == self.settings["end_id"]
            if self.ended.all():
                return t + 1
        return len(u)


# The C's step and draw in NumPy (the same rational tanh, the same ranking and inverse-CDF draw),
# for machines without a C compiler. Its sums run in another order, so logits differ from the
# C's in their last float32 bits, and a draw whose uniform number falls that close to a boundary
# between two tokens can differ (in tests, never; a text from random large weights, after some
# dozens of tokens). A step costs a few NumPy calls per layer, each more than its arithmetic at
# batch 1, hence the C.

def _tanh(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, np.float32(-7.90531110), np.float32(7.90531110))
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    for c in (2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08, 1.48572235717979e-05,
              6.37261928875436e-04, 4.89352455891786e-03):
        p = p * x2 + np.float32(c)
    q = np.float32(1.19825839466702e-06)
    for c in (1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03):
        q = q * x2 + np.float32(c)
    return x * p / q


def _numpy_step(batch: "_Batch") -> None:
    model, s = batch.stepper, batch.state
    h_size, start, below = sum(model.units), 0, 0
    for layer, u in enumerate(model.units):
        table = model.tables[layer][batch.tokens] if layer == 0 else model.tables[layer]
        z = table + s[:, start - below:start + u] @ model.dense_kernels[layer]
        c = s[:, h_size + start:h_size + start + u]
        c[:] = (_tanh(z[:, u:2 * u]) + 1) / 2 * c + (_tanh(z[:, :u]) + 1) / 2 * _tanh(z[:, 3 * u:4 * u])
        s[:, start:start + u] = (_tanh(z[:, 2 * u:3 * u]) + 1) / 2 * _tanh(c)
        start, below = start + u, u
    logits = model.out_bias + s[:, start - below:start] @ model.dense_out_kernel
    batch.logits[:] = logits[:, :model.vocab_size]


def _numpy_draw(batch: "_Batch", u: np.ndarray) -> None:
    settings, vocab = batch.settings, batch.logits.shape[1]
    top_k = settings["top_k"] if 0 < settings["top_k"] < vocab else 0
    for r, logits in enumerate(batch.logits):
        w = logits.astype(np.float64) * settings["inv_temperature"]
        w[batch.banned] = -np.inf
        ranked = np.lexsort((np.arange(vocab), -w))  # most likely first, ties by id
        if top_k:
            w[w < w[ranked[top_k - 1]]] = -np.inf
        w = np.exp(w - w.max())
        total = np.cumsum(w)[-1]
        if settings["top_p"] < 1:  # a token stays if the tokens ranked above it hold less than top_p
            above = np.concatenate([[0.0], np.cumsum(w[ranked])[:-1]])
            dropped = ranked[above >= settings["top_p"] * total]
            total = np.cumsum(np.r_[total, -w[dropped]])[-1]  # one by one, as the C subtracts
            w[dropped] = 0
        running = np.cumsum(w)
        drawable = np.flatnonzero((w > 0) & (running > u[r] * total))
        if len(drawable) or (w > 0).any():  # the C leaves the token as it was when nothing is drawable
            batch.tokens[r] = drawable[0] if len(drawable) else np.flatnonzero(w > 0)[-1]


def sample_next(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator,
                top_p: float | None = None, banned=()) -> np.ndarray:
    """Draw one token id per row of `logits` (batch, vocab) at `temperature`. Sampling, not
    argmax: greedy decoding loops. `top_k` keeps the k most likely tokens; `top_p` (nucleus
    sampling) the smallest set whose probability reaches p; `banned` ids are never drawn."""
    batch = _Batch(*np.shape(logits), None, temperature, top_k, top_p, banned)
    batch.logits[:] = logits
    batch.draw(rng.random(len(batch.logits)))
    return batch.tokens


def load_weights(path, train_stage: str = "train-lstm") -> dict:
    """The sampler's arrays, read as data only (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"cannot read model weights {path} ({err}); run `dvc checkout {path}` or "
                        f"`dvc repro -f {train_stage}`")


def _padded(a) -> np.ndarray:
    """`a` in float32, its columns (last axis) padded with zeros to a multiple of _PANEL."""
    return np.ascontiguousarray(np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, -a.shape[-1] % _PANEL)]), np.float32)


def _panels(w) -> np.ndarray:
    """A weight matrix (inputs, outputs) as panels of _PANEL outputs, one after another."""
    w = _padded(w)
    return np.ascontiguousarray(w.reshape(len(w), -1, _PANEL).transpose(1, 0, 2))


class Stepper:
    """Runs a trained model one token at a time, carrying each LSTM layer's (h, c) state, so
    generating a token costs one step, not a pass over the whole window as in the tutorial.

    The step (the C above) runs on weights laid out for it: the first layer's input projection
    is looked up (embedding @ kernel + bias, one row per token), each later layer does one product
    of [x, h] with its stacked kernels, and one tanh serves all gates. A test checks it against the
    Keras model run over whole sequences."""

    def __init__(self, weights: dict):
        n_layers = sum(1 for key in weights if key.endswith("_recurrent_kernel"))
        layers = [[weights[f"lstm_{i}_{part}"].astype(np.float32) for part in ("kernel", "recurrent_kernel", "bias")]
                  for i in range(1, n_layers + 1)]
        self.units = [kernel.shape[1] // 4 for kernel, _, _ in layers]
        # Keras' gate order is input, forget, candidate, output. Put the three sigmoid gates
        # first and halve their columns: sigmoid(x) = (tanh(x / 2) + 1) / 2, so every gate is a tanh.
        order = [np.r_[0:u, u:2 * u, 3 * u:4 * u, 2 * u:3 * u] for u in self.units]
        scale = [np.r_[np.full(3 * u, 0.5), np.ones(u)].astype(np.float32) for u in self.units]
        (k1, r1, b1), o1, s1 = layers[0], order[0], scale[0]
        # a table per layer, a row per token in the first, the bias alone in the others
        self.tables = [(weights["embedding"].astype(np.float32) @ k1 + b1)[:, o1] * s1,
                       *[b[o] * sc for (_, _, b), o, sc in zip(layers[1:], order[1:], scale[1:])]]
        self.kernels = [r1[:, o1] * s1,
                        *[np.vstack([k, r])[:, o] * sc for (k, r, _), o, sc in zip(layers[1:], order[1:], scale[1:])]]
        # laid out as the C's affine reads them: columns padded to panels
        kernels = self.kernels
        self.tables, self.kernels = [_padded(t) for t in self.tables], [_panels(k) for k in kernels]
        self.out_kernel, self.out_bias = _panels(weights["logits_kernel"]), _padded(weights["logits_bias"])
        # the same, unpanelled, for the NumPy step
        self.dense_kernels = [_padded(k) for k in kernels]
        self.dense_out_kernel = _padded(weights["logits_kernel"])
        self.vocab_size = weights["logits_bias"].shape[0]
        # the model's fields of the C's batch_t (the arrays they point into live as long as self does)
        self._c_arrays = dict(units=np.array(self.units, np.int64), out_kernel=self.out_kernel, out_bias=self.out_bias,
                              **{name: np.array([a.ctypes.data for a in getattr(self, name)], np.uintp)
                                 for name in ("kernels", "tables")})
        self.c_model = dict(layers=len(self.units), **{name: a.ctypes.data for name, a in self._c_arrays.items()})

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, 2 * sum(self.units)), np.float32)

    def step(self, token_ids: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed one token per row; return the logits for the next token and the new state."""
        batch = _Batch(len(state), self.vocab_size, self)
        batch.tokens[:], batch.state[:] = _token_ids(token_ids, self.vocab_size), state
        batch.step()
        return batch.logits, batch.state


def generate(stepper, seeds: list, length: int, temperature: float, top_k, rng, end_id=None, top_p=None,
             banned=(), on_token=None) -> list[list[int]]:
    """Prime the state with the seeds (one per row, all the same length), then draw up to
    `length` tokens per row; a row stops at `end_id`, which is not returned. `on_token` is
    called with each step's tokens as they are drawn (to stream them to a terminal)."""
    prompt = _token_ids(np.stack(seeds).T, stepper.vocab_size)  # a row of tokens per step
    rows = prompt.shape[1]
    batch = _Batch(rows, stepper.vocab_size, stepper, temperature, top_k, top_p, banned, end_id)
    for tokens in prompt[:-1]:
        batch.tokens[:] = tokens
        batch.step()
    batch.tokens[:] = prompt[-1]
    # The C draws all the tokens in one call, or one step's for each on_token. Either way a step
    # takes the generator's next number for each row, so the text is the same (all at once, it
    # also draws numbers for the steps that an early end leaves out).
    out, drawn = np.empty((length, rows), np.int64), 0
    while drawn < length and not batch.ended.all():
        n = 1 if on_token else length - drawn
        drawn += batch.run(rng.random((n, rows)), out[drawn:drawn + n])
        if on_token:
            on_token(out[drawn - 1])
    return [row[:row.index(end_id)] if end_id in row else row for row in out[:drawn].T.tolist()]


def banned_ids(vocab: dict) -> list[int]:
    """Tokens a generated text must never contain: padding, and the unknown token (which stands
    for rare training tokens, not for text anyone wrote)."""
    return [vocab["tokens"].index(vocab[key]) for key in ("pad", "unknown") if vocab.get(key)]


def validation_seeds(tokens: np.ndarray, seed_length: int, count: int, rng) -> list[tuple[int, np.ndarray]]:
    """`count` windows of the validation text (offset, ids), chosen by the RNG: the prompt a
    sample starts from when none is given."""
    length = min(seed_length, len(tokens))
    offsets = rng.integers(0, len(tokens) - length + 1, size=count)
    return [(int(o), np.asarray(tokens[o:o + length])) for o in offsets]  # an ndarray's slice, or a map's


def describe_cleaning(cleaning: dict) -> str:
    done = [what for key, what in (("lowercase", "lowercased"), ("ascii_punctuation", "punctuation folded to ASCII"),
                                   ("ascii_fold", "accents folded to ASCII"),
                                   ("strip_punctuation", "punctuation removed")) if cleaning.get(key)]
    return " and ".join(done)


def encode_prompt(prompt: str, vocab: dict, source: str) -> np.ndarray:
    """A prompt as token ids, cleaned as the model's training text was (the switches are in the
    vocabulary). Characters or words still outside the vocabulary are refused by name, with why."""
    tokens, cleaning = vocab["tokens"], vocab.get("cleaning") or {}
    how = describe_cleaning(cleaning)
    after = f" (after it was {how}, as the training text was)" if how else ""
    if vocab.get("unit") == "word":
        words = clean_headline(prompt, **cleaning)[0].split()
        if not words:
            raise UserError(f"{source}: {prompt!r} has no words left{after}; give words")
        known = set(tokens) - {vocab.get("pad"), vocab.get("unknown"), vocab.get("end")}
        missing = list(dict.fromkeys(w for w in words if w not in known))
        if missing:
            raise UserError(f"{source}: {prompt!r} has words the model never saw in training{after}: "
                            f"{', '.join(missing)} (it knows the {len(known):,} most frequent words of its "
                            "headlines); choose other words")
        return np.array(encode_words(words, vocab))
    text = clean_text(prompt, **cleaning) if cleaning else prompt
    if not text:
        raise UserError(f"{source} is empty; give some text to start from")
    missing = sorted(set(text) - (set(tokens) - {vocab.get("unknown")}))
    if missing:
        raise UserError(f"{source} has characters the model never saw in its training text{after}: "
                        + ", ".join(repr(c) for c in missing[:20]) + "; remove or replace them")
    return encode_chars(text, vocab, source)


def check_model_matches(spec: dict, predicts: int, vocab: dict, where: str = "") -> None:
    """A model that predicts another number of tokens than the vocabulary holds comes from another run."""
    if predicts != len(vocab["tokens"]):
        raise UserError(f"{spec['weights']} predicts {predicts} tokens but {spec['vocab']} has {len(vocab['tokens'])}"
                        f"{where}: they come from different runs; run `dvc repro {spec['train_stage']}`")


def sample_chars(params, stepper, vocab, train, val, rng) -> tuple[str, dict, list, float]:
    """`num_samples` texts of `length` characters, each after a seed: `seed_text`, or a window
    of the validation text chosen by the RNG. Returns the samples' text, its measures, the
    seeds, and the tokens generated per second (the generation alone, not the measuring)."""
    if params["seed_text"] is not None:
        ids = encode_prompt(params["seed_text"], vocab, "params.yaml: sample.seed_text")
        seeds = [{"source": "params.yaml", "ids": ids}] * params["num_samples"]
    else:
        seeds = [{"source": "validation text", "offset": offset, "ids": ids}
                 for offset, ids in validation_seeds(val["tokens"], params["seed_length"], params["num_samples"], rng)]
    started = time.monotonic()
    rows = generate(stepper, [s["ids"] for s in seeds], params["length"], params["temperature"], params["top_k"], rng,
                    top_p=params["top_p"], banned=banned_ids(vocab))
    speed = sum(map(len, rows)) / (time.monotonic() - started)
    texts = [decode_chars(row, vocab) for row in rows]
    out = []
    for i, (seed, generated) in enumerate(zip(seeds, texts), 1):
        where = f", offset {seed['offset']}" if "offset" in seed else ""
        out.append(f"=== sample {i} of {len(texts)} ===\nseed ({seed['source']}{where}):\n"
                   f"{decode_chars(seed['ids'], vocab)}\ngenerated:\n{generated}\n")
    training_words = known_words(train["tokens"].pieces(1 << 17), vocab, {w for t in texts for w in words(t)})
    seeds = [{k: v for k, v in s.items() if k != "ids"} for s in seeds]
    return "\n".join(out), char_metrics(texts, training_words), seeds, speed


SAMPLE_HEADING = re.compile(r"=== sample \d+ of \d+ ===\nseed \((?P<source>[^\n]*)\):\n")


def read_char_samples(text: str) -> list[dict]:
    """The texts in a samples.txt that sample_chars wrote: each {"source", "seed", "generated"}."""
    headings = list(SAMPLE_HEADING.finditer(text))
    samples = []
    for heading, after in zip(headings, headings[1:] + [None]):
        # each sample is written "...{generated}\n", and the samples are joined by a blank line
        block = text[heading.end():after.start() - 1 if after else len(text)]
        seed, _, generated = block.partition("\ngenerated:\n")
        samples.append({"source": heading["source"], "seed": seed, "generated": generated.removesuffix("\n")})
    return samples


def sample_headlines(params, stepper, vocab, train, val, rng) -> tuple[str, dict, list, float]:
    """One headline per seed phrase: the seed, then up to `max_words` words or the end token;
    title-cased as in the tutorial. Returns as sample_chars does."""
    tokens, unknown = vocab["tokens"], vocab["unknown"]
    lines, headlines, generated, seeds, seconds = [], [], [], [], 0.0
    for phrase in params["seeds"]:
        ids = encode_prompt(phrase, vocab, "params.yaml: sample-headlines.seeds")
        seed_words = [tokens[i] for i in ids]
        started = time.monotonic()
        row = generate(stepper, [ids], params["max_words"], params["temperature"], params["top_k"], rng,
                       end_id=tokens.index(vocab["end"]), top_p=params["top_p"], banned=banned_ids(vocab))[0]
        seconds += time.monotonic() - started
        new_words = [tokens[i] for i in row]
        headline = seed_words + new_words
        headlines.append(headline)
        generated.append(new_words)
        seeds.append({"phrase": phrase, "words": seed_words})
        lines.append(" ".join(w if w == unknown else w.title() for w in headline))
    pad = tokens.index(vocab["pad"])
    training = {" ".join(tokens[i] for i in row if i != pad and tokens[i] != vocab["end"]) for row in train["rows"]}
    metrics = headline_metrics(headlines, generated, training, unknown)
    speed = (sum(map(len, generated)) + len(generated)) / seconds  # + the end tokens
    return "\n".join(lines) + "\n", metrics, seeds, speed


def preview(text: str, lines: int = 6) -> str:
    """The start of what the model wrote, for the console: the first char sample's generated text
    (without its seed and headings), or the first headlines."""
    if text.startswith("=== sample"):
        text = read_char_samples(text)[0]["generated"].strip("\n")
    head = text.splitlines()[:lines]
    return "\n".join(f"  {line}" for line in head) + ("\n  ..." if len(text.splitlines()) > lines else "")


def next_step(branch: str, text: str) -> str:
    """What to run next, with a prompt the model can read (its own first words)."""
    prompt = " ".join(re.sub(r"[^\w ]+", "", preview(text, 1)).split()[:2]) or "the"  # nothing a shell would read
    if branch == "headlines":
        return f'next: lstm-textgen generate --branch headlines "{prompt.lower()}"   (your own words: --help)'
    return f'next: lstm-textgen generate "{prompt}"   (your own prompt; --help lists the settings)'
