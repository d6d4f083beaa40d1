"""msad: frame-level ground truth (same as `generate_gt.py --dataset msad`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from iefvad.cli.lists import generate_gt_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(generate_gt_main(dataset="msad", list_dir=Path(__file__).resolve().parent))
