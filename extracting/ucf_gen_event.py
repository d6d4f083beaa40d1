import os, sys  # noqa: E401, I001 - the repo root on sys.path: runs without installing

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Seed front end over extracting/extract.py: ucfcrime synthetic-event features.
#   python extracting/ucf_gen_event.py --video_dir V --save_dir F/event_thr_10 --clip_ckpt CKPT
from iefvad.cli.extract import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(dataset="ucfcrime", modality="event", compat=True))
