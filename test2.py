"""Uncertainty explorer: ``python test2.py --ckpt_path checkpoints/ucf/ucf.pth``.

Degrades one modality at test time (attenuation, noise, a dropped span) and writes a CSV and
plots of AUC/AP, Brier score, KL(clean||noisy) and the fusion weights (docs/fusion.md).
"""

from iefvad.cli.entry import explore_main

if __name__ == "__main__":
    explore_main()
