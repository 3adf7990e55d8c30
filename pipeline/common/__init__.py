"""Plumbing every stage shares and no number depends on: params and their validation, paths, atomic writes,
the stage's command-line wrapper, errors, MLflow runs and the team server's login check."""
