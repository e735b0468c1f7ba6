"""Learning-rate schedule: linear warm-up, then linear / cosine / constant."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmask")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`peak` * min(1, step / warmup), then decayed to `final_fraction` * peak.

    Example:
    >>> schedule = WarmupDecay(1.0, total_steps=10, warmup_steps=2)
    >>> [round(float(schedule(s)), 2) for s in (0, 1, 2, 6, 10)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """

    def __init__(self, peak, total_steps, warmup_steps=0, decay="linear", final_fraction=0.0):
        self.peak = peak
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.decay = decay
        self.final_fraction = final_fraction

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.minimum(1.0, step / max(self.warmup_steps, 1)) if self.warmup_steps else 1.0
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.decay == "linear":
            shape = 1.0 - progress
        elif self.decay == "cosine":
            shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
        else:
            shape = ops.ones_like(progress)
        floor = self.final_fraction
        return self.peak * warmup * (floor + (1.0 - floor) * shape)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "decay": self.decay,
                "final_fraction": self.final_fraction}
