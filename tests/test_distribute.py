"""The train step under tf.distribute.MirroredStrategy, on two logical CPU devices (the multi-GPU path)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, offline_env

# Runs in a fresh interpreter: logical devices must be configured before TensorFlow starts.
ONE_STEP = """
import json, sys
import numpy as np, tensorflow as tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pipeline.common.config import load_params
from pipeline.images.masks import MaskedSplit
from pipeline.images.masks import skeletons
from pipeline.training.batches import training_batches
from pipeline.training.gan import LOSS_NAMES
from pipeline.training.recipes import RECIPES
from pipeline.training.trainer import build_gan

params = load_params("params.yaml")
rng = np.random.default_rng(0)
clean = rng.uniform(-1, 1, (64, 28, 28, 1)).astype("float32")
holes = np.zeros((64, 28, 28), bool)
holes[:, 8:16, 8:16] = True
masked = np.where(holes[..., None], np.float32(-1), clean)
labels = np.arange(64) % 10
data = MaskedSplit(clean, labels, masked, holes, skeletons(np.rint((clean[..., 0] + 1) * 127.5).astype(np.uint8)))

def one_step(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        gan = build_gan(params.gan)
    before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    logs = gan.fit(training_batches(data, params, steps=1, epochs=range(1)), epochs=1, steps_per_epoch=1,
                   verbose=0).history
    changed = any(not np.array_equal(b, w.numpy()) for b, w in zip(before, gan.generator.trainable_weights))
    return {name: logs[name][0] for name in LOSS_NAMES} | {
        "replicas": strategy.num_replicas_in_sync, "generator_updated": changed}

devices = [d.name for d in tf.config.list_logical_devices("CPU")]
print(json.dumps({"mirrored": one_step(tf.distribute.MirroredStrategy(devices)),
                  "single": one_step(tf.distribute.get_strategy()),
                  "weights": {"recon": params.gan.recon_weight, "class": RECIPES["blind"].class_weight,
                              "reader": RECIPES["blind"].reader_weight, "mask": RECIPES["blind"].mask_weight}}))
"""


@pytest.mark.slow
def test_train_step_under_mirrored_strategy_reports_whole_batch_losses():
    result = subprocess.run(
        [sys.executable, "-c", ONE_STEP], cwd=ROOT, env=offline_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    mirrored, single, weights = out["mirrored"], out["single"], out["weights"]
    assert mirrored["replicas"] == 2 and single["replicas"] == 1
    assert mirrored["generator_updated"] and single["generator_updated"]
    # Same initial weights and batch: the losses of the first step agree across strategies. With
    # hand-written means instead of Keras losses, the replicas' BCE terms would be halved and the
    # L1 term not, which these comparisons catch.
    assert abs(mirrored["d_loss"] - single["d_loss"]) < 0.05
    assert abs(mirrored["l1"] - single["l1"]) < 0.02 * single["l1"]
    assert abs(mirrored["class_loss"] - single["class_loss"]) < 0.02 * single["class_loss"]
    assert abs(mirrored["damage_loss"] - single["damage_loss"]) < 0.02 * single["damage_loss"]
    adversarial = {
        name: run["g_loss"]
        - weights["recon"] * run["l1"]
        - weights["class"] * run["class_loss"]
        - weights["reader"] * run["reader_loss"]
        - weights["mask"] * run["damage_loss"]
        for name, run in (("mirrored", mirrored), ("single", single))
    }
    assert 0.3 < adversarial["single"] < 2.0
    assert abs(adversarial["mirrored"] - adversarial["single"]) < 0.05
