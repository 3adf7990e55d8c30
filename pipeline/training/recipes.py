"""The restorer's three recipes, each a named preset: `gan.recipe` in params.yaml picks one.

A recipe fixes what makes it that recipe (its networks, its loop, its losses) and gives its own values to the
dials of params.gan a user may turn (epochs, batch, learning rates, ...), used where params.yaml leaves a dial
null. A dial a recipe fixes (`fixed`) refuses any other value. docs/recipes.md says what each ingredient buys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Every recipe's, never varied: Adam's beta1 (the chapter's 0.5) and one-sided label smoothing (real images at 0.9).
BETA1 = 0.5
REAL_LABEL = 0.9


@dataclass(frozen=True)
class Recipe:
    loop: str  # compiled: one train_step per batch (pipeline/training/gan.py) | chapter: pipeline/training/chapter_loop.py
    generator: str  # unet | chapter (the chapter's conv autoencoder as published)
    discriminator: str  # patch (one verdict per 4x4 grid cell) | chapter (as published, one verdict per image)
    mask_channel: bool  # the generator also gets the true hole as an input channel
    composite: bool  # keep the intact pixels: outside the true hole (mask_channel), else outside the damage head's find
    mask_weight: float  # the damage head's cross-entropy against the ink that was lost (blind composite)
    class_weight: float  # D also reads the digit; G pays the cross-entropy of the true digit in D's reading
    reader_weight: float  # G reads the digit first and draws from its reading, trained with this weight
    dials: dict[str, object]  # the recipe's value of each params.gan dial left null
    fixed: dict[str, object] = field(default_factory=dict)  # dials this recipe allows at this value only

    @property
    def fresh_damage(self) -> bool:
        """The compiled loop draws new damage every iteration; the chapter's trains on the mask stage's draw."""
        return self.loop == "compiled"


BLIND_DIALS = dict(
    epochs=3, batch_size=64, lr_g=4e-4, lr_d=8e-4, recon_weight=100.0, ema=0.99, reader_warmup=0, precision="auto"
)
RECIPES = {
    # Blind restoration: a U-Net that gets the damaged image alone, finds the damage with a damage head and
    # restores it there; L1 + adversarial loss, D and the generator also read the digit.
    "blind": Recipe("compiled", "unet", "patch", False, True, 1.0, 1.0, 1.0, BLIND_DIALS),
    # The same U-Net told where the hole is (an oracle the app does not have), composited with that hole.
    "given_hole": Recipe("compiled", "unet", "patch", True, True, 0.0, 1.0, 1.0, BLIND_DIALS),
    # The chapter's training as it was published: its networks and loop, the adversarial loss alone, the mask
    # stage's damage, its optimisers, batch and epochs, in float32. Trained on the chapter's box alone
    # (mask.families.boxes / strokes at weight 0) it reproduces the chapter.
    "chapter": Recipe(
        "chapter",
        "chapter",
        "chapter",
        False,
        False,
        0.0,
        0.0,
        0.0,
        dict(epochs=5, batch_size=128, lr_g=2e-4, lr_d=4e-4, precision="float32"),
        fixed=dict(recon_weight=0.0, ema=0.0, reader_warmup=0),
    ),
}
