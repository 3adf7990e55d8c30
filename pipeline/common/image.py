"""The images every stage handles: 28x28 pixels, one of 10 classes (digits, or Fashion-MNIST's kinds of clothing)."""

IMAGE_SIDE = 28
NUM_CLASSES = 10
