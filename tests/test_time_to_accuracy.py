"""benchmarks/time_to_accuracy.py's scorer on tiny runs of both loops: monotone training-time stamps, scores
where it was told, the thresholds it was given, and the generator left as training had it."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import yaml
from conftest import ROOT, random_masked_batch

from pipeline.common.config import parse_params
from pipeline.common.param_keys import set_override
from pipeline.images.masks import MaskedSplit
from pipeline.scoring.metrics import accuracy
from pipeline.training.classifier import build_classifier
from pipeline.training.trainer import train

sys.path.insert(0, str(ROOT / "benchmarks"))
from time_to_accuracy import AccuracyClock, HeldOut, scored_generator, seconds_to  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    masked, holes, clean = random_masked_batch(64)
    labels = np.arange(64) % 10
    split = MaskedSplit(clean, labels, masked, holes, np.zeros(holes.shape, bool))
    judge = build_classifier()
    read = lambda images: judge(images).numpy().argmax(axis=1)  # noqa: E731
    held_out = HeldOut(
        masked[:32],
        clean[:32],
        holes[:32],
        labels[:32],
        accuracy(read(clean[:32]), labels[:32]),
        accuracy(read(masked[:32]), labels[:32]),
    )
    return split, judge, held_out


class SwapRecordingClock(AccuracyClock):
    """Also records, at each score, whether the scored weights differed from the training ones and whether the
    training ones were back in place afterwards."""

    swaps: list

    def on_train_batch_end(self, batch, logs=None):
        self.swaps = getattr(self, "swaps", [])
        if (self.iteration + 1) % self.every == 0:
            training = [v.numpy() for v in self.model.generator.trainable_variables]
            with scored_generator(self.model) as generator:
                scored = [v.numpy() for v in generator.trainable_variables]
            super().on_train_batch_end(batch, logs)
            kept = all(np.array_equal(a, v.numpy()) for a, v in zip(training, self.model.generator.trainable_variables))
            self.swaps.append((any(not np.array_equal(a, b) for a, b in zip(training, scored)), kept))
        else:
            super().on_train_batch_end(batch, logs)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["default", "chapter"])
def test_the_clock_scores_every_n_iterations_on_monotone_training_seconds(tiny, recipe):
    split, judge, held_out = tiny
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    set_override(raw, "gan.recipe", "blind" if recipe == "default" else recipe)
    params = parse_params(raw)
    params = dataclasses.replace(
        params, gan=dataclasses.replace(params.gan, epochs=2, steps_per_epoch=3, batch_size=16)
    )
    clock = SwapRecordingClock(held_out, judge, every=2, total=6)
    gan, _ = train(params, split, [clock])
    iterations, seconds, accuracies, recovered, on_lost, on_intact, given_hole = zip(*clock.records)
    assert iterations == (2, 4, 6)  # every 2nd iteration, and the last
    assert seconds[0] > 0 and all(b > a for a, b in zip(seconds, seconds[1:]))
    assert clock.scoring > 0 and all(0.0 <= a <= 1.0 for a in accuracies)
    # The damage head's diagnosis: probabilities and an accuracy for the blind default, nothing for the chapter's.
    diagnosis = on_lost + on_intact + given_hole
    if recipe == "default":
        assert all(0.0 < v < 1.0 for v in on_lost + on_intact) and all(0.0 <= a <= 1.0 for a in given_hole)
    else:
        assert diagnosis == (None,) * 9
    assert seconds_to(clock.records, 2, 0.0) == seconds[0]
    assert seconds_to(clock.records, 2, 1.01) is None
    best = max(accuracies)
    assert seconds_to(clock.records, 2, best) == seconds[accuracies.index(best)]
    # Mid-run, the default recipe (gan.ema) is scored on its averaged weights and trains on from its own.
    assert clock.swaps and all(kept for _, kept in clock.swaps)
    assert all(differed for differed, _ in clock.swaps) == (recipe == "default" and params.gan.ema > 0)
