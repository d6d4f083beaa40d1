"""Anomaly scores of the user's own videos and live streams with a trained checkpoint."""
