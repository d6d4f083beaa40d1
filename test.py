"""Evaluate a checkpoint: ``python test.py --ckpt_path checkpoints/ucf/ucf.pth``."""

from iefvad.cli.entry import test_main

if __name__ == "__main__":
    test_main()
