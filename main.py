"""Train IEF-VAD: ``python main.py --dataset {ucfcrime,xd,shang,msad,custom}`` (see --help)."""

from iefvad.cli.entry import train_main

if __name__ == "__main__":
    train_main()
