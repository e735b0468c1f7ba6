"""AdamW whose update of each variable is TensorFlow's fused Adam kernel.

Keras' `AdamW.update_step` writes Adam as about a dozen elementwise ops per
variable (subtract, multiply and add for each moment, a square root, a
divide, ...), each a pass over the variable with a temporary, and its
weight decay evaluates the learning-rate schedule again for every variable.
For a 6-layer encoder with a 30522 x 384 word embedding on a CPU that is
over a thousand small ops and several gigabytes of memory traffic a step.
The formula Keras computes,

    m   += (g - m) (1 - beta_1)
    v   += (g^2 - v) (1 - beta_2)
    var -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon),

is exactly what `tf.raw_ops.ResourceApplyAdam` computes in one multi-threaded
pass (it has an XLA kernel too). `FusedAdamW` calls that kernel per
variable and applies the decoupled weight decay, var *= 1 - weight_decay *
lr, in one more op with the learning rate computed once per step. Same
results up to float rounding (tests/training/test_optimizer.py: the same
weights as Keras' AdamW after many steps), same optimizer variables, so a
checkpoint of either restores into the other. Keras' own update is kept
where the kernel does not apply: other backends (the kernel is
TensorFlow's), `amsgrad`, and `IndexedSlices` gradients of variables not
named in `sparse_rows` (TensorFlow has no sparse Adam kernel).

Row-sparse updates (`sparse_rows`, e.g. `["embeddings"]`). A batch of 32 x
56 tokens reads about a thousand of a 30522-row word embedding, yet a dense
AdamW step reads and writes all of its rows five times (the gradient made
dense, its norm, clipping, decay, Adam). For the variables whose path names
one of `sparse_rows`, an `IndexedSlices` gradient updates only the rows it
holds, and each row catches up with the steps it sat out when it is next
touched:

- moments: exact. A row untouched for k steps had k zero gradients, so
  dense Adam multiplied m by beta_1^k and v by beta_2^k; the row's first
  update after the gap applies those factors, then the step's own.
- weight decay: exact in what the update writes. Dense AdamW multiplied
  the row by (1 - lr_j wd) at every step j; a running sum L of
  log(1 - lr_j wd) per variable and, per row, the L of its last update
  give the product as one exp(). The forward pass of the step that reads
  the row again sees it before that catch-up, larger by 1 / prod(1 - lr_j
  wd) over the skipped steps (1 + 1e-6 per skipped step for the main job's
  lr 1e-4, wd 0.01), so its gradient differs by as little.
- Adam's own step for untouched rows: skipped. Dense Adam keeps moving a
  row after its last gradient (lr m_hat / sqrt(v_hat) with m decaying by
  beta_1 per step, about 1 / (1 - beta_1) steps' worth); the row-sparse
  update does not, as TensorFlow's LazyAdam and PyTorch's SparseAdam. With
  beta_1 = 0 that motion is zero: on fixed gradients the two then agree to
  float rounding, and training a model without weight decay too
  (tests/training/test_sparse_embedding_update.py).

`flush_sparse_rows()` brings every row up to the current step (decay and
moments); tfmask's trainer calls it before any evaluation and export, so
weights that leave training are current. Checkpoints keep the per-row
state (optimizer variables) and resume exactly without a flush.

Example:
>>> import keras
>>> optimizer = FusedAdamW(learning_rate=1e-3, weight_decay=0.01)
>>> variable = keras.Variable([1.0, -2.0])
>>> optimizer.apply([keras.ops.convert_to_tensor([0.5, 0.5])], [variable])
>>> [round(float(x), 5) for x in variable.numpy()]
[0.99899, -2.00098]
"""

import keras

_TENSORFLOW = keras.backend.backend() == "tensorflow"
if _TENSORFLOW:
    import tensorflow as tf


def summed_rows(gradient):
    """`IndexedSlices` with one slice per lookup -> one slice per row (the
    repeated rows summed), as `IndexedSlices`."""
    rows, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


@keras.saving.register_keras_serializable(package="tfmask")
class FusedAdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with the fused update (see the module doc);
    same arguments, same results, plus `sparse_rows`: substrings of variable
    paths (e.g. `["embeddings"]`) whose `IndexedSlices` gradients update only
    their rows (module doc; TensorFlow backend)."""

    def __init__(self, *args, sparse_rows=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.sparse_rows = list(sparse_rows or [])
        if self.sparse_rows and not _TENSORFLOW:
            raise ValueError("FusedAdamW(sparse_rows=...) needs the TensorFlow backend.")

    def get_config(self):
        return {**super().get_config(), "sparse_rows": self.sparse_rows}

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Per row: the step and the log-decay sum L at its last update;
        # per variable: L now. None for variables updated densely.
        self._row_steps, self._row_log_decay, self._log_decay = [], [], []
        for variable in var_list:
            rows = None
            if len(variable.shape) >= 2 and any(name in variable.path
                                                for name in self.sparse_rows):
                rows = variable.shape[0]
            for store, shape, dtype, kind in (
                    (self._row_steps, (rows,), "int64", "row_step"),
                    (self._row_log_decay, (rows,), "float32", "row_log_decay"),
                    (self._log_decay, (), "float32", "log_decay")):
                store.append(None if rows is None else self.add_variable(
                    shape, dtype=dtype, name=f"{variable.name}_{kind}"))

    def _fused(self, gradient):
        return _TENSORFLOW and not self.amsgrad and not isinstance(gradient, tf.IndexedSlices)

    def _decays(self, variable):
        return self.weight_decay is not None and self._use_weight_decay(variable)

    def _decay_factor(self, variable, lr):
        """1 - weight_decay * lr for a decayed variable, else None."""
        if not self._decays(variable):
            return None
        return 1.0 - tf.cast(self.weight_decay, variable.dtype) * lr

    def _apply_weight_decay(self, variables):
        # With the fused update, decay happens in `update_step` (one learning
        # rate per step, not one schedule evaluation per variable).
        if not _TENSORFLOW:
            super()._apply_weight_decay(variables)

    def update_step(self, gradient, variable, learning_rate):
        if not _TENSORFLOW:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        index = self._get_variable_index(variable)
        decay = self._decay_factor(variable, lr)
        if self._row_steps[index] is not None:
            if isinstance(gradient, tf.IndexedSlices) and not self.amsgrad:
                return self._update_rows(gradient, variable, lr, decay, index)
            # A dense step touches every row.
            self._mark_rows_current(index, self.iterations + 1,
                                    self._advance_log_decay(index, decay).value)
        if decay is not None:
            variable.assign(variable * decay)
        if not self._fused(gradient):
            return super().update_step(gradient, variable, learning_rate)
        m, v = self._momentums[index], self._velocities[index]
        step = tf.cast(self.iterations + 1, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=lr, beta1=tf.cast(self.beta_1, dtype), beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))

    def _advance_log_decay(self, index, decay):
        """L += log(this step's decay factor); returns the variable L."""
        log_decay = self._log_decay[index]
        if decay is not None:
            log_decay.assign_add(tf.math.log(tf.cast(decay, "float32")))
        return log_decay

    def _mark_rows_current(self, index, step, log_decay):
        """Every row of variable `index` last updated at `step`, with the
        log-decay sum `log_decay`."""
        steps = self._row_steps[index]
        steps.assign(tf.fill(steps.shape, tf.cast(step, "int64")))
        self._row_log_decay[index].assign(tf.fill(steps.shape, log_decay))

    def _caught_up(self, values, m, v, row_steps, owed_log_decay=None):
        """`values` (rows or a whole table) and their moments as dense AdamW
        leaves them after the steps since `row_steps` without a gradient:
        moments times beta^skipped, weight decay exp(owed_log_decay) paid
        (module doc)."""
        dtype = values.dtype
        shape = [-1] + [1] * (len(values.shape) - 1)
        skipped = tf.reshape(tf.cast(self.iterations - row_steps, dtype), shape)
        m = m * tf.pow(tf.cast(self.beta_1, dtype), skipped)
        v = v * tf.pow(tf.cast(self.beta_2, dtype), skipped)
        if owed_log_decay is not None:
            values = values * tf.reshape(tf.cast(tf.exp(owed_log_decay), dtype), shape)
        return values, m, v

    def _update_rows(self, gradient, variable, lr, decay, index):
        """Adam on the rows `gradient` holds, after their catch-up (module doc)."""
        dtype = variable.dtype
        gradient = summed_rows(gradient)  # cheap again after the trainer summed them
        rows, grad = gradient.indices, tf.cast(gradient.values, dtype)
        m, v = self._momentums[index], self._velocities[index]
        steps, row_log_decay = self._row_steps[index], self._row_log_decay[index]
        step = self.iterations + 1

        def gather(store):
            return tf.raw_ops.ResourceGather(resource=store.handle, indices=rows,
                                             dtype=store.dtype)

        def scatter(store, values):
            tf.raw_ops.ResourceScatterUpdate(resource=store.handle, indices=rows,
                                             updates=values)

        log_decay = self._advance_log_decay(index, decay)
        var_rows, m_rows, v_rows = self._caught_up(
            gather(variable), gather(m), gather(v), gather(steps),
            # this step's decay included
            None if decay is None else log_decay - gather(row_log_decay))
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        m_rows += (grad - m_rows) * (1.0 - beta_1)
        v_rows += (tf.square(grad) - v_rows) * (1.0 - beta_2)
        t = tf.cast(step, dtype)
        alpha = lr * tf.sqrt(1.0 - tf.pow(beta_2, t)) / (1.0 - tf.pow(beta_1, t))
        var_rows -= alpha * m_rows / (tf.sqrt(v_rows) + tf.cast(self.epsilon, dtype))
        scatter(variable, var_rows)
        scatter(m, m_rows)
        scatter(v, v_rows)
        scatter(steps, tf.fill(tf.shape(rows), tf.cast(step, "int64")))
        scatter(row_log_decay, tf.fill(tf.shape(rows), log_decay.value))

    def flush_sparse_rows(self):
        """Brings every row of the `sparse_rows` variables up to the current
        step: the moment decay and weight decay of the steps each row sat
        out (module doc). Idempotent; call it before weights leave training
        (evaluation, export). A no-op for an unbuilt optimizer."""
        if not getattr(self, "built", False):
            return
        for index, variable in enumerate(self._trainable_variables):
            if self._row_steps[index] is None:
                continue
            m, v = self._momentums[index], self._velocities[index]
            log_decay = self._log_decay[index].value
            values, m_caught_up, v_caught_up = self._caught_up(
                variable.value, m.value, v.value, self._row_steps[index].value,
                log_decay - self._row_log_decay[index].value if self._decays(variable)
                else None)
            variable.assign(values)
            m.assign(m_caught_up)
            v.assign(v_caught_up)
            self._mark_rows_current(index, self.iterations, log_decay)
