import os, sys  # noqa: E401, I001 - the repo root on sys.path: runs without installing

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Seed front end over extracting/extract.py: xd CLIP image features.
#   python extracting/xd_gen_img.py --video_dir V --save_dir F/rgb
from iefvad.cli.extract import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(dataset="xd", modality="image", compat=True))
