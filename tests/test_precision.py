"""gan.precision auto: bfloat16 maths only where the hardware has bfloat16 units (pipeline/training/precision.py)."""

import dataclasses
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from pipeline.common.config import load_params
from pipeline.training import precision
from pipeline.training.trainer import build_gan

ROOT = Path(__file__).resolve().parents[1]
CPU_ONLY = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="with a GPU, auto reads the GPU")


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    """A two-core /proc/cpuinfo with these flags."""
    path = tmp_path / flags.replace(" ", "_")
    path.write_text("".join(f"processor\t: {core}\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n\n" for core in (0, 1)))
    return path


@CPU_ONLY
def test_auto_computes_in_bfloat16_only_on_a_cpu_with_bfloat16_units(tmp_path):
    assert precision.resolve("auto", cpuinfo(tmp_path, "fpu sse2 avx2 avx512f avx512_bf16")) == "mixed_bfloat16"
    assert precision.resolve("auto", cpuinfo(tmp_path, "fpu sse2 avx2 amx_bf16 amx_tile")) == "mixed_bfloat16"
    assert precision.resolve("auto", cpuinfo(tmp_path, "fpu sse2 avx2 fma avx512f")) == "float32"
    assert precision.resolve("auto", tmp_path / "no_such_file") == "float32"  # not Linux: the safe choice


def test_an_explicit_precision_is_kept_whatever_the_cpu(tmp_path):
    for explicit in ("float32", "mixed_bfloat16"):
        assert precision.resolve(explicit, cpuinfo(tmp_path, "fpu sse2 avx2")) == explicit
        assert precision.resolve(explicit, cpuinfo(tmp_path, "avx512_bf16")) == explicit


@CPU_ONLY
def test_the_default_params_build_the_gan_in_what_this_cpu_computes_fast():
    g = load_params(ROOT / "params.yaml").gan
    assert g.precision == "auto"
    has_units = bool(precision.BFLOAT16_CPU_FLAGS & precision.cpu_flags())
    first_conv = next(layer for layer in build_gan(g).generator.layers if isinstance(layer, keras.layers.Conv2D))
    assert first_conv.compute_dtype == ("bfloat16" if has_units else "float32")
    assert first_conv.kernel.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"
    built = build_gan(dataclasses.replace(g, precision="mixed_bfloat16")).generator
    assert next(layer for layer in built.layers if isinstance(layer, keras.layers.Conv2D)).compute_dtype == "bfloat16"
