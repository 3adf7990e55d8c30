"""digit-restore: restore masked handwritten digits with a GAN, tracked by DVC and MLflow.

The modules at this level are the five stages dvc.yaml runs (`python -m pipeline.<stage>`): download, mask,
train_classifier, train_gan, evaluate. What they are built from lives in the subpackages: images, training and
scoring (what the numbers depend on: dvc.yaml lists them as deps), common (plumbing), serving (the restorer in
use) and review (reading runs afterwards)."""

import os

# Quiet TensorFlow's C++ start-up chatter and MLflow's telemetry unless the user asked otherwise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
