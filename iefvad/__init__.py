"""IEF-VAD: uncertainty-weighted image-event fusion for weakly-supervised video anomaly detection."""

__version__ = "0.1.0"
