"""The only package that imports torch and sam2: checkpoints, the predictor, the run over a sequence."""
