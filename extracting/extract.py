import os, sys  # noqa: E401, I001 - the repo root on sys.path: runs without installing

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Extract CLIP image and synthetic-event features of a folder of videos (any dataset):
#   python extracting/extract.py --dataset ucfcrime --video_dir videos --out_root feats \
#       --clip_ckpt ViT-L-14.pt --event_clip_ckpt event_vitl.pt
#   torchrun --nproc_per_node 8 extracting/extract.py ...   # one GPU per rank
# All options: --help; the guide: docs/extraction.md.
from iefvad.cli.extract import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
