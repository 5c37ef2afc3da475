"""The classic Keras tutorial's char-level method, rebuilt in Keras 3 as the baseline the
benchmarks measure this project against. Faithful on purpose, flaws included: every
100-character window at stride 1 is copied out, characters are fed as floats scaled to [0, 1),
targets are one-hot, each window predicts only the character after it, and generation re-reads
the whole window through `model.predict` for every character and takes the argmax.
"""

import keras
import numpy as np

SEQ_LENGTH = 100
BATCH_SIZE = 128


def windows_as_floats(ids: np.ndarray, vocab_size: int, seq_length: int = SEQ_LENGTH):
    """X: every window, one copy each, as floats id / vocab_size, shape (n, seq_length, 1);
    y: the character after each window, one-hot (the tutorial's np_utils.to_categorical)."""
    windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], seq_length)
    x = windows.reshape(len(windows), seq_length, 1) / float(vocab_size)  # a float64 copy, as in the tutorial
    y = keras.utils.to_categorical(ids[seq_length:], vocab_size)
    return x, y


def build_model(vocab_size: int, seq_length: int = SEQ_LENGTH) -> keras.Model:
    """One LSTM(256) reading the floats, dropout 0.2, a softmax over the characters."""
    model = keras.Sequential([keras.Input((seq_length, 1)),
                              keras.layers.LSTM(256),
                              keras.layers.Dropout(0.2),
                              keras.layers.Dense(vocab_size, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    return model


def generate(model: keras.Model, seed: list[int], length: int, scale: float | None) -> list[int]:
    """The tutorial's loop: predict on the full window, take the argmax, slide the window by one.
    `scale` divides the ids (the tutorial's float input); None feeds ids (an embedding model, whose
    prediction for the window's last position is the next character)."""
    window, out = list(seed), []
    for _ in range(length):
        x = np.array(window, dtype=np.float32)[None, :, None] / scale if scale else np.array([window])
        probs = model.predict(x, verbose=0)
        nxt = int(np.argmax(probs[0] if probs.ndim == 2 else probs[0, -1]))
        out.append(nxt)
        window = window[1:] + [nxt]
    return out
