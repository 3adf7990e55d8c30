"""digit-restore: restore masked handwritten digits with a GAN, tracked by DVC and MLflow."""
