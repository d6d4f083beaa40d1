"""Training, evaluation, metrics, resumable state, output paths and the evaluation reports of a
checkpoint."""
