"""The GAN as a Keras model whose `train_step` updates D and G from one compiled graph.

Follows the keras.io pattern of overriding `train_step`. Unlike the chapter's
loop (generator.predict, then D.train_on_batch, then the stacked model's
train_on_batch), the generator runs once per step in training mode, so its
BatchNorm layers use batch statistics, and both updates share that forward.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from pipeline.training.models import DAMAGE, DIGIT_READING, has_layer

# What each training step reports, per iteration (losses.csv, MLflow); a term a recipe lacks reports 0.
LOSS_NAMES = ("d_loss", "g_loss", "l1", "class_loss", "reader_loss", "damage_loss")


class RestorationGAN(keras.Model):
    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        real_label: float,
        recon_weight: float,
        class_weight: float = 0.0,
        reader_weight: float = 0.0,
        mask_weight: float = 0.0,
    ):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.real_label = real_label
        self.recon_weight = recon_weight
        self.class_weight = class_weight
        self.reader_weight = reader_weight
        self.mask_weight = mask_weight
        # The same generator with the outputs its extra losses read (its digit reading, its damage map) beside
        # the restoration: one forward pass for all of them.
        self.extra_outputs = [
            name
            for name, weight in ((DIGIT_READING, reader_weight), (DAMAGE, mask_weight))
            if weight and has_layer(generator, name)
        ]
        self.generator_outputs = (
            keras.Model(
                generator.input, [generator.output, *(generator.get_layer(name).output for name in self.extra_outputs)]
            )
            if self.extra_outputs
            else None
        )
        # Keras losses (not hand-written means) so that under a tf.distribute strategy each replica's
        # loss is divided by the number of replicas and the summed gradients are the global mean.
        self.bce = keras.losses.BinaryCrossentropy()
        self.mae = keras.losses.MeanAbsoluteError()
        self.cce = keras.losses.SparseCategoricalCrossentropy()

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        # Create the optimizer slots now, inside the caller's strategy scope: created lazily in the
        # first distributed step they would be per-replica placeholders that never get fed.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def losses_for(self, inputs, clean, labels, holes, training: bool):
        """D loss (the chapter's: mean BCE over the real batch at `real_label` and the fake batch at 0),
        G loss (adversarial BCE towards 1, plus `recon_weight` x L1), the L1 term alone, the class term
        and the reader term.

        `inputs` are generator inputs (masked image and hole channels); the discriminator sees `clean` and
        the restoration of the same images (paired batches). With a patch discriminator the BCE is the
        mean over its grid of patch verdicts. With `class_weight` > 0 the discriminator also learns to
        read the digit of the real images, and G pays `class_weight` x the cross-entropy of the true digit
        in D's reading of the restoration: L1 alone lets a hole that could be a 4 or a 9 be filled with
        an average of both, which reads as neither. With `reader_weight` > 0 the generator has its own digit
        reader (models.build_generator's digit_reader), and G also pays `reader_weight` x the cross-entropy
        of the true digit in that reading. With `mask_weight` > 0 the blind generator's damage head pays
        `mask_weight` x the binary cross-entropy of its map against the ink that was lost (`holes` where the
        damaged image differs from the clean one): damage that lies on paper changes no pixel, so no reader of
        the damaged image could find it, and the composite needs to know only where ink is missing."""
        if self.extra_outputs:
            fake, *extra = self.generator_outputs(inputs, training=training)
        else:
            fake, extra = self.generator(inputs, training=training), []
        extra = dict(zip(self.extra_outputs, extra))
        out = self.discriminator(ops.concatenate([clean, fake], axis=0), training=training)
        p, classes = out if self.class_weight else (out, None)
        p_real, p_fake = ops.split(p, 2, axis=0)
        d_loss = 0.5 * (
            self.bce(ops.full_like(p_real, self.real_label), p_real) + self.bce(ops.zeros_like(p_fake), p_fake)
        )
        l1 = self.mae(clean, fake)
        g_loss = self.bce(ops.ones_like(p_fake), p_fake) + self.recon_weight * l1
        class_loss = ops.zeros_like(l1)
        if self.class_weight:
            classes_real, classes_fake = ops.split(classes, 2, axis=0)
            class_loss = self.cce(labels, classes_fake)
            d_loss = d_loss + self.cce(labels, classes_real)
            g_loss = g_loss + self.class_weight * class_loss
        reader_loss = ops.zeros_like(l1)
        if DIGIT_READING in extra:
            reader_loss = self.cce(labels, extra[DIGIT_READING])
            g_loss = g_loss + self.reader_weight * reader_loss
        damage_loss = ops.zeros_like(l1)
        if DAMAGE in extra:
            lost = ops.cast(holes, "float32")[..., None] * ops.cast(ops.abs(clean - inputs[..., :1]) > 0, "float32")
            damage_loss = self.bce(lost, extra[DAMAGE])
            g_loss = g_loss + self.mask_weight * damage_loss
        return d_loss, g_loss, l1, class_loss, reader_loss, damage_loss

    def train_step(self, batch):
        inputs, (clean, labels, holes) = batch
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            d_loss, g_loss, l1, class_loss, reader_loss, damage_loss = self.losses_for(
                inputs, clean, labels, holes, training=True
            )
        d_weights = self.discriminator.trainable_weights
        g_weights = self.generator.trainable_weights
        self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, d_weights), d_weights))
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_weights), g_weights))
        losses = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "l1": l1,
            "class_loss": class_loss,
            "reader_loss": reader_loss,
            "damage_loss": damage_loss,
        }
        # Undo the per-replica scaling for reporting: the logged values are the losses of the whole batch.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return {name: value * replicas for name, value in losses.items()}
