"""ucfcrime: train/test list CSVs (same as `generate_file.py --dataset ucfcrime`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from iefvad.cli.lists import generate_file_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(generate_file_main(dataset="ucfcrime", list_dir=Path(__file__).resolve().parent))
