"""IEF-VAD: uncertainty-weighted image-event fusion for weakly-supervised VAD."""

__version__ = "0.1.0"
