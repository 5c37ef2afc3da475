"""Keras' LSTM layer with a faster time loop for the CPU: the same weights, the same function.

On a CPU, Keras runs an LSTM as a loop over time steps in which every step reads its weights
again (under mixed bfloat16, casting each of them to bfloat16 again) and, in the backward pass,
adds each step's share of the weight gradients: a matrix product that sums over only `batch`
rows, which the CPU does slowly. Measured here (oneDNN's own timings) for the 2x512 at batch 64
in mixed bfloat16: those step-by-step weight gradients took 0.37 s of a 1.1-second batch.

CpuLSTM reorders that work, not the model:
- the weights are cast once per batch, and the input's share of every step's gates is computed
  for the whole window at once, before the loop;
- the loop carries only the hidden and cell states forward, and their gradients backward (a
  hand-written gradient, below), keeping each step's gate values for the way back;
- both weight gradients are then one matrix product over every step of every sequence.
The matrix products run in the layer's compute dtype; the gates and the cell state stay float32
(under mixed bfloat16, Keras' loop keeps them in bfloat16, 8 bits of mantissa).
Where a GPU is present, or the layer uses anything this loop does not do (masks, dropout inside
the layer, other activations, stateful or reversed runs, float64), it runs Keras' own loop, so it
stays cuDNN-eligible. Its weights and config are Keras' LSTM's; tests/test_model.py checks its
outputs and gradients against keras.layers.LSTM's, and benchmarks/cpu_lstm_speed.py times both.
"""

import keras
import tensorflow as tf


def recurrence(sequences, h0, c0, kernel, recurrent_kernel, bias):
    """An LSTM over whole sequences, in Keras' gate order (input, forget, cell, output).
    `sequences`: [batch, time, features]; `h0`, `c0`: [batch, units]; the weights as Keras'
    LSTMCell holds them. Returns every step's hidden state [time, batch, units] and the last
    cell state. The matrix products run in the inputs' dtype (bfloat16 under mixed precision),
    the gates and the cell state in float32."""
    dtype, f32 = sequences.dtype, tf.float32

    @tf.custom_gradient
    def run(sequences, h0, c0, kernel, recurrent_kernel, bias):
        batch, steps, features = tf.unstack(tf.shape(sequences))
        units = tf.shape(h0)[1]
        inputs = tf.reshape(tf.transpose(sequences, [1, 0, 2]), [-1, features])  # time first
        # The bias is added in float32, after the product: TensorFlow would otherwise fuse the two
        # into one oneDNN op that ran at a fraction of the product's speed here.
        input_gates = tf.reshape(tf.cast(tf.matmul(inputs, kernel), f32) + tf.cast(bias, f32),
                                 [steps, batch, 4 * units])

        def forward(t, h, c, hs, cs, gates):
            pre = input_gates[t] + tf.cast(tf.matmul(h, recurrent_kernel), f32)
            i, f, g, o = tf.split(pre, 4, axis=-1)
            i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
            c = f * c + i * g
            h = tf.cast(o * tf.tanh(c), dtype)
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), gates.write(t, tf.concat([i, f, g, o], -1))

        arrays = [tf.TensorArray(type_, size=steps) for type_ in (dtype, f32, f32)]
        _, _, c_last, hs, cs, gates = tf.while_loop(lambda t, *_: t < steps, forward,
                                                    (0, h0, tf.cast(c0, f32), *arrays))
        hs, cs, gates = hs.stack(), cs.stack(), gates.stack()

        def gradient(d_hs, d_c_last):
            d_hs = tf.cast(d_hs, f32)
            d_c_last = tf.zeros_like(c0, f32) if d_c_last is None else tf.cast(d_c_last, f32)
            c_before = tf.concat([tf.cast(c0, f32)[None], cs[:-1]], 0)

            def backward(t, dh, dc, d_pres):
                i, f, g, o = tf.split(gates[t], 4, axis=-1)
                tanh_c = tf.tanh(cs[t])
                dh = dh + d_hs[t]
                dc = dc + dh * o * (1 - tanh_c * tanh_c)
                d_pre = tf.cast(tf.concat([dc * g * i * (1 - i), dc * c_before[t] * f * (1 - f),
                                           dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)], -1), dtype)
                dh = tf.cast(tf.matmul(d_pre, recurrent_kernel, transpose_b=True), f32)
                return t - 1, dh, dc * f, d_pres.write(t, d_pre)

            _, dh0, dc0, d_pres = tf.while_loop(lambda t, *_: t >= 0, backward,
                                                (steps - 1, tf.zeros_like(h0, f32), d_c_last,
                                                 tf.TensorArray(dtype, size=steps)))
            d_pres = tf.reshape(d_pres.stack(), [-1, 4 * units])
            h_before = tf.reshape(tf.concat([h0[None], hs[:-1]], 0), [-1, units])
            # Both weight gradients, over every step of every sequence, in one product.
            d_weights = tf.matmul(tf.concat([inputs, h_before], 1), d_pres, transpose_a=True)
            d_inputs = tf.transpose(tf.reshape(tf.matmul(d_pres, kernel, transpose_b=True), [steps, batch, features]),
                                    [1, 0, 2])
            d_bias = tf.cast(tf.reduce_sum(tf.cast(d_pres, f32), 0), dtype)  # summed in float32: batch x steps terms
            return (d_inputs, tf.cast(dh0, dtype), tf.cast(dc0, dtype), d_weights[:features], d_weights[features:],
                    d_bias)

        return (hs, tf.cast(c_last, dtype)), gradient

    return run(sequences, h0, c0, kernel, recurrent_kernel, bias)


@keras.saving.register_keras_serializable(package="lstm_textgen")
class CpuLSTM(keras.layers.LSTM):
    """keras.layers.LSTM, run by `recurrence` on a CPU (see the module's docstring)."""

    def fast_loop(self, mask) -> bool:
        cell = self.cell
        return (mask is None and not tf.config.list_logical_devices("GPU") and keras.backend.backend() == "tensorflow"
                and self.compute_dtype in ("float32", "bfloat16", "float16")  # its gates run in float32
                and not (cell.dropout or cell.recurrent_dropout or self.stateful or self.go_backwards or self.unroll)
                and cell.use_bias and cell.activation is keras.activations.tanh
                and cell.recurrent_activation is keras.activations.sigmoid)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self.fast_loop(mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell, dtype = self.cell, self.compute_dtype
        # Read (and cast) once per call: inside the loop every step would do it again.
        kernel, recurrent_kernel, bias = (tf.cast(w, dtype) for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
        h0, c0 = (tf.cast(state, dtype) for state in initial_state)
        hs, c_last = recurrence(tf.cast(sequences, dtype), h0, c0, kernel, recurrent_kernel, bias)
        return hs[-1], tf.transpose(hs, [1, 0, 2]), [hs[-1], c_last]
