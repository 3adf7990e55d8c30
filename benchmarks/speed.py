"""Training and restoration speed: the chapter's loop against the project's compiled train step.

    python benchmarks/speed.py [--iterations 30] [--warmup 5] [--intra 0] [--inter 0] [--jit-compile] [--floor]
        [--variants chapter classic classic-bf16 default default-fp32 default-bf16]

In one process, on the same random batches of 128 images, times
  (a) the chapter's loop: generator.predict, discriminator.train_on_batch on 256 images,
      then the stacked (generator -> frozen discriminator) model's train_on_batch, from Python;
  (b) the project's `RestorationGAN.train_step` (one compiled graph) for the classic recipe
      and for the default recipe of params.yaml, each in float32 and in mixed bfloat16;
and restoring 10,000 images with each generator. Prints the median seconds per iteration,
images per second, the ratio to (a), seconds per epoch of 60,000 images, the FLOPs of one
step counted from the layer shapes, the fraction of the peak FLOP/s of a large matmul on this
machine that each reaches, the time restoring 10,000 images would take if the generator's forward ran at
that peak (no restoration can beat it), and the peak RSS. Warm-up iterations are excluded. With --floor, also the time
of each (b) variant's convolutions run alone: the speed no step of those models can beat. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from pipeline.common.config import load_params, parse_params
from pipeline.common.param_keys import set_override
from pipeline.images.masks import MaskedSplit
from pipeline.scoring.inference import forward
from pipeline.training import chapter_loop as chapter_loop_module
from pipeline.training.models import build_discriminator
from pipeline.training.precision import resolve as resolve_precision
from pipeline.training.recipes import RECIPES
from pipeline.training.trainer import build_gan

ROOT = Path(__file__).resolve().parents[1]
BATCH = 128
EPOCH_IMAGES = 60_000
RESTORE_IMAGES = 10_000


def layer_flops(layer: keras.layers.Layer) -> int:
    """Multiply-adds x 2 of a Conv2D or Dense layer for one image; 0 for the rest (negligible)."""
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, c_out = layer.output.shape
        k_h, k_w, c_in, _ = layer.kernel.shape
        return 2 * h * w * k_h * k_w * c_in * c_out
    if isinstance(layer, keras.layers.Dense):
        return 2 * int(np.prod(layer.kernel.shape))
    return 0


def forward_flops(model: keras.Model) -> int:
    return sum(layer_flops(layer) for layer in model.layers)


def peak_matmul_flops(dtype: str, n: int = 2048, repeats: int = 5) -> float:
    a = tf.cast(tf.random.uniform((n, n)), dtype)
    matmul = tf.function(lambda x: tf.linalg.matmul(x, x))
    matmul(a).numpy()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a).numpy()
        times.append(time.perf_counter() - started)
    return 2 * n**3 / min(times)


def conv_seconds(layer: keras.layers.Conv2D, batch: int, dtype, iterations: int, warmup: int) -> float:
    """Median seconds of `layer`'s convolution alone on `batch` images: forward, then the gradients of its input
    and kernel."""
    x = tf.cast(tf.random.normal((batch, *layer.input.shape[1:])), dtype)
    kernel = tf.cast(tf.random.normal(layer.kernel.shape), dtype)
    strides, padding = layer.strides, layer.padding.upper()

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            out = tf.reduce_sum(tf.cast(tf.nn.conv2d(x, kernel, strides, padding), tf.float32))
        return tape.gradient(out, [x, kernel])

    return median_seconds(lambda _: [g.numpy() for g in forward_backward()], iterations, warmup)


def convolution_floor(generator, discriminator, precision: str, iterations: int, warmup: int) -> tuple[float, int]:
    """Seconds and FLOPs of the models' convolutions, each run alone on the shapes of one step (G's on BATCH
    images, D's on real + fake) in `precision`'s compute dtype: no train step of these models can be faster with
    these kernels, whatever glue (BatchNorm, activations, optimizer, Python) it drops."""
    dtype = tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32
    seconds = flops = 0
    for model, batch in ((generator, BATCH), (discriminator, 2 * BATCH)):
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                seconds += conv_seconds(layer, batch, dtype, iterations, warmup)
                flops += 3 * batch * layer_flops(layer)
    return seconds, flops


def median_seconds(step, iterations: int, warmup: int) -> float:
    times = []
    for i in range(warmup + iterations):
        started = time.perf_counter()
        step(i)
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def chapter_loop(gan_params, batches, iterations, warmup) -> tuple[float, keras.Model]:
    """The chapter's three Python-level calls per iteration (pipeline/training/chapter_loop.py), on the batches' images."""
    gan = chapter_loop_module.build(gan_params)
    masked = np.concatenate([inputs[..., :1] for inputs, _, _ in batches])
    clean = np.concatenate([clean for _, clean, _ in batches])
    data = MaskedSplit(
        clean,
        np.concatenate([labels for _, _, labels in batches]),
        masked,
        masked[..., 0] == -1.0,
        np.zeros(masked.shape[:3], bool),
    )
    draws = chapter_loop_module.epoch_batches(len(clean), BATCH, iterations + warmup, seed=0, epoch=0)

    def step(i):
        chapter_loop_module.iteration(gan, data, draws[i])

    return median_seconds(step, iterations, warmup), gan.generator


def project_step(gan_params, batches, iterations, warmup, jit_compile=False) -> tuple[float, keras.Model]:
    gan = build_gan(gan_params)
    compiled = tf.function(gan.train_step, jit_compile=jit_compile)
    tensors = [
        (tf.constant(x), (tf.constant(y), tf.constant(labels), tf.constant(x[..., 1]))) for x, y, labels in batches
    ]

    def step(i):
        logs = compiled(tensors[i % len(tensors)])
        float(logs["g_loss"])  # wait for the step to finish

    return median_seconds(step, iterations, warmup), gan.generator


def restore_seconds(generator: keras.Model, images: np.ndarray, chapter_style: bool) -> float:
    """Chapter: predict() with its default batch of 32. Project: pipeline.scoring.inference.forward, as evaluate runs it
    (one compiled call per chunk; timed from the first call, tracing included)."""
    started = time.perf_counter()
    if chapter_style:
        generator.predict(images, verbose=0)
    else:
        forward(generator, images)
    return time.perf_counter() - started


# name -> (label, timer, recipe, precision (None: the recipe's own), chapter-style restore)
VARIANTS = {
    "chapter": ("(a) chapter loop, classic recipe", chapter_loop, "classic", "float32", True),
    "classic": ("(b) train_step, classic recipe", project_step, "classic", "float32", False),
    "classic-bf16": (
        "(b) train_step, classic recipe, mixed bfloat16",
        project_step,
        "classic",
        "mixed_bfloat16",
        False,
    ),
    "default": ("(b) train_step, default recipe (params.yaml)", project_step, "default", None, False),
    "default-fp32": ("(b) train_step, default recipe in float32", project_step, "default", "float32", False),
    "default-bf16": (
        "(b) train_step, default recipe in mixed bfloat16",
        project_step,
        "default",
        "mixed_bfloat16",
        False,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0 = TensorFlow's default)")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0 = TensorFlow's default)")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=list(VARIANTS),
        help="which to time (a thread sweep needs only one; ratios are to the first)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time each (b) variant's convolutions alone: a floor under its step time",
    )
    parser.add_argument(
        "--jit-compile",
        action="store_true",
        help="compile the (b) steps with XLA (Keras leaves XLA off on machines without a GPU)",
    )
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    keras.utils.set_random_seed(0)

    default = load_params(ROOT / "params.yaml").gan
    # The chapter's networks, losses and batch in the compiled step (build_gan builds a recipe's networks for the
    # compiled step whatever its loop): the same work as the chapter's loop, timed both ways.
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    set_override(raw, "gan.recipe", "chapter")
    classic = parse_params(raw).gan
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(8):
        clean = rng.uniform(-1, 1, (BATCH, 28, 28, 1)).astype(np.float32)
        holes = np.zeros((BATCH, 28, 28, 1), dtype=np.float32)
        holes[:, 8:16, 8:16] = 1.0
        inputs = np.concatenate([np.where(holes > 0, -1.0, clean), holes], -1).astype(np.float32)
        batches.append((inputs, clean, rng.integers(0, 10, BATCH).astype(np.int32)))
    test_images = np.concatenate([batches[i % 8][0] for i in range(RESTORE_IMAGES // BATCH + 1)])[:RESTORE_IMAGES]

    peaks = {dtype: peak_matmul_flops(dtype) for dtype in ("float32", "bfloat16")}
    for dtype, peak in peaks.items():
        print(f"peak matmul: {peak / 1e9:.0f} GFLOP/s (2048x2048 {dtype}, best of 5)")
    recipes = {"classic": classic, "default": default}
    print(
        "\n| variant | s/iteration | images/s | vs first row | s/epoch | GFLOP/step | of peak (its dtype) | restore 10k s | restore 10k at peak, s | process peak RSS so far, MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    baseline = None
    floors = []
    for variant in args.variants:
        name, run, recipe, precision, chapter_style = VARIANTS[variant]
        gan_params = dataclasses.replace(
            recipes[recipe], precision=resolve_precision(precision or recipes[recipe].precision)
        )
        name = name if precision else f"{name}, {gan_params.precision}"  # what params.yaml's precision resolved to
        peak = peaks["bfloat16" if gan_params.precision == "mixed_bfloat16" else "float32"]
        xla = {"jit_compile": args.jit_compile} if run is project_step else {}
        seconds, generator = run(gan_params, batches, args.iterations, args.warmup, **xla)
        baseline = baseline or seconds
        g = forward_flops(generator)
        recipe_networks = RECIPES[gan_params.recipe]
        discriminator = build_discriminator(recipe_networks.discriminator, class_head=recipe_networks.class_weight > 0)
        d = forward_flops(discriminator)
        # Per image: (a) G forward in predict, D trained on real+fake (3x forward each), stacked G+D trained
        # (3x G, 3x D); (b) one G forward+backward (3x) and D forward+backward on real and fake (3x, 2 images).
        flops = BATCH * ((4 * g + 9 * d) if chapter_style else (3 * g + 6 * d))
        restore = restore_seconds(generator, test_images, chapter_style)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"| {name} | {seconds:.3f} | {BATCH / seconds:.0f} | {baseline / seconds:.2f}x | "
            f"{EPOCH_IMAGES / BATCH * seconds:.0f} | {flops / 1e9:.1f} | {flops / seconds / peak:.0%} | "
            f"{restore:.2f} | {RESTORE_IMAGES * g / peak:.2f} | {rss:.0f} |",
            flush=True,
        )
        if args.floor and run is project_step:
            floor, conv_flops = convolution_floor(
                generator, discriminator, gan_params.precision, args.iterations, args.warmup
            )
            floors.append(
                f"| {name} | {floor:.3f} | {conv_flops / 1e9:.1f} | {conv_flops / floor / 1e9:.0f} | "
                f"{baseline / floor:.2f}x |"
            )
    if floors:
        print(
            "\nFloor: each (b) step's convolutions alone, forward and backward once (the step itself takes D's "
            "input gradients twice: for D's update and for G's)\n"
        )
        print("| variant | s | GFLOP | GFLOP/s | at most, vs first row |")
        print("|---|---|---|---|---|")
        print("\n".join(floors))


if __name__ == "__main__":
    main()
