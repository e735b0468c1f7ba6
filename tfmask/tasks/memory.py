"""What one training step needs at least, checked against the machine's memory.

A config whose step cannot fit (`data.batch_size: 1000000000`,
`data.sequence_length: 100000`) would otherwise spend minutes reading data
and building the model, then end in an out-of-memory error or a crash. Each
family says what its step holds (`Task.step_memory`); `check_step_memory`
refuses, in one line, a step that needs more than the machine has.

The estimate is a lower bound, so that only clear impossibilities are
refused: float32 weights with their gradients and Adam's two moments (16
bytes a parameter), one tensor per block kept for the backward pass, one
attention score per query, key, head and layer (TensorFlow's attention
materialises them), the logits, each counted once, and 8 MiB per block for
the model's layers and the traced step's graph, whatever the block's size
(measured: a 1000-block model of width 32 held 7 GB once built and over
19 GB while its first step was traced). The machine's
memory is the host's (`os.sysconf`): a GPU's is not known cheaply and is
smaller, so the host's is an upper bound for it too.

Example:
>>> memory = StepMemory(parameters=10, activations=10**15, attention=0, blocks=0,
...                     keys={"activations": ("data.batch_size",)})
>>> memory.total, format_bytes(memory.total)
(1000000000000160, '909.5 TiB')
"""

import dataclasses
import os

from tfmask.errors import ConfigError

ADAM_BYTES = 16  # a float32 weight, its gradient and Adam's two moments
BLOCK_BYTES = 8 * 2**20  # a block's layers and its share of the traced step's graph
# What lowers each part of the estimate, for the line that refuses it.
PART_KEYS = {"parameters": ("model.num_layers", "model.hidden_dim", "model.intermediate_dim",
                            "data.vocabulary_size"),
             "activations": ("data.batch_size", "data.sequence_length", "model.num_layers"),
             "attention": ("data.sequence_length", "data.batch_size", "model.num_heads"),
             "graph": ("model.num_layers",)}


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """Bytes one training step holds at least, by what drives them.

    `keys` overrides `PART_KEYS` for a family whose sizes have other names
    (`model.lstm_units`, `data.target_length`)."""

    parameters: int  # weights, gradients and Adam state
    activations: int  # kept for the backward pass, logits included
    attention: int  # attention scores
    blocks: int  # Transformer blocks (the model's layers and graph)
    keys: dict = dataclasses.field(default_factory=dict)

    def parts(self):
        """Bytes by part: weights and Adam state, activations, attention
        scores, the model's layers and graph."""
        return {"parameters": self.parameters * ADAM_BYTES, "activations": self.activations,
                "attention": self.attention, "graph": self.blocks * BLOCK_BYTES}

    @property
    def total(self):
        return sum(self.parts().values())

    def largest(self):
        """The part that needs the most memory, and the keys that lower it."""
        parts = self.parts()
        part = max(parts, key=parts.get)
        return part, self.keys.get(part, PART_KEYS[part])


def activation_bytes(config):
    """Bytes of one activation value: 2 under a mixed policy (or `auto`,
    which may pick one), else 4."""
    return 4 if config.runtime.precision == "float32" else 2


def transformer_parameters(vocabulary, length, hidden, intermediate, layers, cross=False):
    """Embeddings (tokens, positions) and `layers` blocks: attention (Q, K,
    V, output), a cross-attention too in a decoder, and the feed-forward."""
    attention = 4 * hidden * hidden * (2 if cross else 1)
    return vocabulary * hidden + length * hidden + layers * (attention + 2 * hidden * intermediate)


def block_values(batch, length, hidden, intermediate, layers):
    """Values `layers` blocks keep for the backward pass, at least: each
    block's input and attention output [B, S, H] and its feed-forward's
    inner layer [B, S, I]."""
    return layers * batch * length * (2 * hidden + intermediate)


def machine_memory():
    """This machine's physical memory in bytes, or None where unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(count):
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            break
        count /= 1024
    if unit == "TiB" and count >= 1024:
        return f"{count / 1024:,.1f} PiB"
    return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"


def _setting(config, key):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def check_step_memory(config, memory, available=None):
    """One line if `memory` (a `StepMemory`) exceeds the machine's memory
    (`available` bytes; default: this machine's)."""
    available = machine_memory() if available is None else available
    if memory is not None and config.runtime.strategy in ("multi_worker", "tpu"):
        # The batch is split over hosts the config does not count.
        memory = dataclasses.replace(memory, activations=0, attention=0)
    if memory is None or not available or memory.total <= available:
        return
    _, keys = memory.largest()
    settings = ", ".join(f"{key}={_setting(config, key)}" for key in keys[:2])
    parts = memory.parts()
    raise ConfigError(
        f"{settings} need{'s' if len(keys) == 1 else ''} at least "
        f"{format_bytes(memory.total)} for one training step ("
        f"{format_bytes(parts['parameters'])} weights and Adam state, "
        f"{format_bytes(parts['activations'])} activations, "
        f"{format_bytes(parts['attention'])} attention scores, "
        f"{format_bytes(parts['graph'])} layers and graph), more than this machine's "
        f"{format_bytes(available)}; lower {_either(keys)}.")


def _either(keys):
    """("a", "b", "c") -> "a, b or c"."""
    return keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} or {keys[-1]}"
