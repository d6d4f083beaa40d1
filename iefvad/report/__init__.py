"""Self-contained HTML reports that play a video under its anomaly score and modality weights."""
