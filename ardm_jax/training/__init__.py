"""Training, evaluation, checkpoints and the workdir: the config turned into a run."""
