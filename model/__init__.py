"""Compatibility package for scripts written against the published IEF-VAD code.

``from model.imf_vad import MMFMIL, MultiModal_Fusion_Attn_Iter`` gives the released class
names, constructor signatures, state-dict keys and output dicts, computed by this toolkit's
model. New code should use :mod:`iefvad.models.model` (``ModelConfig``, ``IEFVAD``) directly.
"""
