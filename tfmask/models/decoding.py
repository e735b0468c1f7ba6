"""Greedy and beam decoding with key/value caches.

The search itself is keras-hub's (`GreedySampler`, `BeamSampler`): it
already handles nested caches (beam search repeats and re-orders every
tensor in the cache, encoder outputs included) and stop tokens. tfmask
models provide `next(prompt, cache, index) -> (logits, hidden, cache)`.
"""


SAMPLERS = ("greedy", "beam")


def make_sampler(name="greedy", num_beams=4):
    if name == "greedy":
        from keras_hub.samplers import GreedySampler  # imported on use: ~1.5 s at start-up

        return GreedySampler()
    if name == "beam":
        from keras_hub.samplers import BeamSampler

        return BeamSampler(num_beams=num_beams, return_all_beams=False)
    raise ValueError(f"sampler={name!r} is not one of {SAMPLERS}.")
