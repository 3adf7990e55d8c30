"""Which compute precision `gan.precision: auto` trains in on this machine.

bfloat16 maths pay only where the hardware has bfloat16 units. On a CPU without them TensorFlow emulates each
bfloat16 op: on an AVX2-only AMD EPYC (family 23) the default recipe's train step was 4.9-7.5x slower in
mixed_bfloat16 than in float32 (docs/benchmarks.md, "On a CPU without bfloat16 units"), so a default `dvc repro`
there would train for hours. With bfloat16 units (AVX512_BF16 or AMX) mixed_bfloat16 is 1.33x faster than
float32. `auto` picks mixed_bfloat16 where every device that trains has them and float32 elsewhere; what it
picked is printed and logged with the run (tag `gan_precision`).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

AUTO = "auto"
BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # as /proc/cpuinfo names them on Linux
BFLOAT16_GPU_CAPABILITY = (8, 0)  # NVIDIA Ampere and later compute in bfloat16 natively
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo; none where there is no such file (not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    return frozenset(
        flag for line in text.splitlines() if line.startswith("flags") for flag in line.partition(":")[2].split()
    )


def has_bfloat16_units(cpuinfo: Path = CPUINFO) -> bool:
    """True where the devices TensorFlow trains on compute bfloat16 natively: every visible GPU is Ampere or later,
    or, with no GPU, the CPU has AVX512_BF16 or AMX."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return all(
            tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) >= BFLOAT16_GPU_CAPABILITY
            for gpu in gpus
        )
    return bool(BFLOAT16_CPU_FLAGS & cpu_flags(cpuinfo))


def resolve(precision: str, cpuinfo: Path = CPUINFO) -> str:
    """`precision` itself, or for `auto` mixed_bfloat16 where the hardware has bfloat16 units and float32 elsewhere."""
    if precision != AUTO:
        return precision
    return "mixed_bfloat16" if has_bfloat16_units(cpuinfo) else "float32"
