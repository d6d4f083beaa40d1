"""Experiments built on the engine: the fusion ablation, the uncertainty explorer and the end-to-end
demo."""
