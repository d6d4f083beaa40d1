"""Write the frame-level ground truth of a test list: ``python list/generate_gt.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from iefvad.cli.lists import generate_gt_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(generate_gt_main(list_dir=Path(__file__).resolve().parent))
