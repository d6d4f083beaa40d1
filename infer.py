"""Anomaly scores for your own videos or a live stream: ``python infer.py VIDEO --ckpt_path CKPT``
(``python infer.py --help``; docs/inference.md)."""

from iefvad.cli.infer import main

if __name__ == "__main__":
    main()
