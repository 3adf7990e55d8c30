"""digit-restore: restore masked handwritten digits with a GAN, tracked by DVC and MLflow."""

import os

# Quiet TensorFlow's C++ start-up chatter and MLflow's telemetry unless the user asked otherwise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
