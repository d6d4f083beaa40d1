"""Evaluate a checkpoint: ``python test.py --ckpt_path checkpoints/ucf/ucf.pth``."""

import os
from pathlib import Path

from iefvad.cli.entry import test_main
from iefvad.data.list_rules import LIST_DIR_ENV

# default lists: this checkout's list/<dataset>/, wherever the script is run from
os.environ.setdefault(LIST_DIR_ENV, str(Path(__file__).resolve().parent / "list"))

if __name__ == "__main__":
    test_main()
