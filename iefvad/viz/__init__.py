"""PNG figures of scores, modality weights, ablations and degradation curves (CPU only)."""
