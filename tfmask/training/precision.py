"""`runtime.precision: auto`: the fastest safe dtype policy on this machine.

    TPU                                        mixed_bfloat16
    GPU, compute capability >= 8.0 (Ampere+)   mixed_bfloat16
    GPU, compute capability 7.x (V100, T4)     mixed_float16 (with loss scaling)
    CPU with AVX512_BF16 or AMX-BF16 units     mixed_bfloat16, float32 under XLA
    anything else                              float32

On this project's 2-core CPU (AVX512_BF16) TensorFlow's oneDNN kernels run
bfloat16 matmuls twice as fast as float32; XLA:CPU does not (it runs them no
faster), hence float32 with `runtime.jit_compile` on a CPU (benchmarks/README.md),
and a warning (`precision_warning`) when mixed_bfloat16 is set by hand there.

The trainer resolves `auto` once per start (`resolve_precision`) and records
the choice and its reason in the run folder's runtime.jsonl; the config keeps
`auto`, so a resume on other hardware or with runtime.jit_compile changed
resolves anew instead of being refused.
Variables, the loss and the softmax stay float32 under every mixed policy.

Example:
>>> choose_precision(strategy="tpu", jit_compile=False, gpus=[], cpu_flags=set())
('mixed_bfloat16', 'TPU')
>>> choose_precision("default", False, gpus=[], cpu_flags={"avx512_bf16"})
('mixed_bfloat16', 'CPU with avx512_bf16')
>>> choose_precision("default", False, gpus=[(7, 5)], cpu_flags=set())
('mixed_float16', 'GPU compute capability 7.5')
"""

import functools

CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags():
    """The CPU feature flags (Linux /proc/cpuinfo); empty where unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def gpu_capabilities():
    """(major, minor) compute capability of every visible GPU."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return capabilities


def choose_precision(strategy, jit_compile, gpus, cpu_flags):
    """(policy, reason) for a machine described by its parts."""
    if strategy == "tpu":
        return "mixed_bfloat16", "TPU"
    if gpus:
        lowest = min(gpus)
        where = f"GPU compute capability {lowest[0]}.{lowest[1]}"
        if lowest >= (8, 0):
            return "mixed_bfloat16", where
        if lowest >= (7, 0):
            return "mixed_float16", where
        return "float32", where
    units = [flag for flag in CPU_BFLOAT16_FLAGS if flag in cpu_flags]
    if not units:
        return "float32", "CPU without bfloat16 units"
    if jit_compile:
        return "float32", f"CPU with {units[0]}, but XLA:CPU runs bfloat16 no faster"
    return "mixed_bfloat16", f"CPU with {units[0]}"


def resolve_precision(runtime):
    """`runtime.precision`, with `auto` replaced by this machine's choice."""
    if runtime.precision != "auto":
        return runtime.precision, "set in the config"
    gpus = gpu_capabilities() if runtime.strategy != "tpu" else []
    return choose_precision(runtime.strategy, runtime.jit_compile, gpus, cpu_flags())


def precision_warning(runtime, precision, gpus=None):
    """A line to print when a policy set by hand runs slower than it needs
    to on this machine (the XLA:CPU rule above), or None.

    >>> from types import SimpleNamespace as Runtime
    >>> precision_warning(Runtime(jit_compile=True, strategy="default"), "mixed_bfloat16", gpus=[])
    'mixed_bfloat16 with jit_compile on a CPU is slower than without XLA; set runtime.jit_compile: false.'
    """
    if not (runtime.jit_compile and precision == "mixed_bfloat16") or runtime.strategy == "tpu":
        return None
    if gpus is None:
        gpus = gpu_capabilities()
    if gpus:
        return None
    return ("mixed_bfloat16 with jit_compile on a CPU is slower than without XLA; set "
            "runtime.jit_compile: false.")
