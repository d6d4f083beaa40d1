"""Train IEF-VAD: ``python main.py --dataset {ucfcrime,xd,shang,msad,custom}`` (see --help)."""

import os
from pathlib import Path

from iefvad.cli.entry import train_main
from iefvad.data.list_rules import LIST_DIR_ENV

# default lists: this checkout's list/<dataset>/, wherever the script is run from
os.environ.setdefault(LIST_DIR_ENV, str(Path(__file__).resolve().parent / "list"))

if __name__ == "__main__":
    train_main()
