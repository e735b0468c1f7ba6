"""Greedy and beam decoding with key/value caches.

The search itself is keras-hub's (`GreedySampler`, `BeamSampler`): it
already handles nested caches (beam search repeats and re-orders every
tensor in the cache, encoder outputs included) and stop tokens. tfmask
models provide `next(prompt, cache, index) -> (logits, hidden, cache)`.
"""

import keras_hub

SAMPLERS = ("greedy", "beam")


def make_sampler(name="greedy", num_beams=4):
    if name == "greedy":
        return keras_hub.samplers.GreedySampler()
    if name == "beam":
        return keras_hub.samplers.BeamSampler(num_beams=num_beams, return_all_beams=False)
    raise ValueError(f"sampler={name!r} is not one of {SAMPLERS}.")
