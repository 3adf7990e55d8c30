"""The restorer in use: the `digit-restore` command, the image preprocessing, the restore-and-read chain and
the MLflow model registry that serves it."""
