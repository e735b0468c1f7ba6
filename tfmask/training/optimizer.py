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
TensorFlow's), `amsgrad`, and `IndexedSlices` gradients (TensorFlow has no
sparse Adam kernel; tfmask's trainer sums embedding slices into dense
gradients before the update anyway).

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


@keras.saving.register_keras_serializable(package="tfmask")
class FusedAdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with the fused update (see the module doc);
    same arguments, same results."""

    def _fused(self, gradient):
        return _TENSORFLOW and not self.amsgrad and not isinstance(gradient, tf.IndexedSlices)

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
        if self.weight_decay is not None and self._use_weight_decay(variable):
            decay = tf.cast(self.weight_decay, dtype) * lr
            variable.assign(variable * (1.0 - decay))
        if not self._fused(gradient):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        step = tf.cast(self.iterations + 1, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=lr, beta1=tf.cast(self.beta_1, dtype), beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))
