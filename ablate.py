"""Compare fusion variants with the same data, training and seeds (see docs/fusion.md).

python ablate.py --synth --variants reference kalman concat --seeds 0 1 2
python ablate.py --dataset ucfcrime --train_list list/ucfcrime/train.csv --seeds 0 1
"""

from iefvad.cli.entry import ablate_main

if __name__ == "__main__":
    ablate_main()
