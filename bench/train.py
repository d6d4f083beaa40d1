"""Training and test-pass throughput on a generated feature set: one JSON line per figure.

    python bench/train.py                       # CI size on a CPU (seconds)
    python bench/train.py --size small          # 1/5 of UCF-Crime's videos, D = 768 (CPU: minutes)
    python bench/train.py --size ucf --amp bf16 # UCF-Crime's size (about 45 GB of float32 files)

Figures (``bench`` key):

* ``train.generate``: writing the feature files (not part of training; reused with ``--root``);
* ``train.bank``: reading every training file once and resampling it to 256 snippets;
* ``train.epoch``: one epoch of the real training step (gather, forward, loss, backward, AdamW),
  steps/s and videos/s, the first step timed apart (allocator / compile warm-up);
* ``train.test_pass``: reading the test list and scoring every test video (``read`` and
  ``predict`` apart) and the reference's video-by-video loop for comparison;
* ``train.eval_in_training``: one evaluation during training (``--select test``): forward
  pass over the test features already in memory plus the headline metrics, and ``before_s``,
  the padded 256-snippet pass plus the full per-class metrics it replaced;
* ``train.ten_epochs``: bank + 10 epochs + test pass, the cost of a whole UCF-style run.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from iefvad.data.bank import BatchSampler, DeviceBank, build_bank  # noqa: E402
from iefvad.data.csv_lists import read_list  # noqa: E402
from iefvad.data.features import chunk  # noqa: E402
from iefvad.data.groundtruth import load_gt  # noqa: E402
from iefvad.datasets.specs import get_spec  # noqa: E402
from iefvad.engine.evaluate import autocast, compute_metrics, load_test_set, predict  # noqa: E402
from iefvad.engine.selection import selection_metrics  # noqa: E402
from iefvad.models.losses import ief_vad_loss  # noqa: E402
from iefvad.models.model import IEFVAD, ModelConfig, kl_shift  # noqa: E402
from iefvad.synthetic.features import SynthSpec, make_feature_set  # noqa: E402

# train normal, train abnormal, test normal, test abnormal, crops, D, batch per loader
SIZES = {
    "ci": (24, 24, 6, 6, 2, 128, 8),
    "small": (160, 162, 30, 28, 2, 768, 16),
    "ucf": (800, 810, 150, 140, 10, 768, 64),
}


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict:
    info = {
        "cpu_cores": os.cpu_count(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=SIZES, default="ci")
    p.add_argument("--root", type=Path, help="feature folder to create or reuse")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--batch_size", type=int, help="per loader (default: by size)")
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    p.add_argument("--skip_reference_loop", action="store_true")
    args = p.parse_args()

    tn, ta, en, ea, crops, dim, batch = SIZES[args.size]
    batch = args.batch_size or batch
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    common = {"size": args.size, "device": str(device), "amp": args.amp, **machine(device)}

    tmp = None
    root = args.root
    if root is None:
        tmp = tempfile.mkdtemp(prefix="iefvad-bench-")
        root = Path(tmp)
    try:
        spec = SynthSpec(
            train_normal=tn,
            train_abnormal=ta,
            test_normal=en,
            test_abnormal=ea,
            crops=crops,
            dim=dim,
            t_median=300,
            t_sigma=0.9,
            t_min=20,
            t_max=6000,
        )
        t0 = time.perf_counter()
        if not (root / "gt.npy").is_file():
            make_feature_set(root, spec, workers=args.workers)
        gen = time.perf_counter() - t0
        rows = read_list(root / "train.csv", event_dir="event_thr_10")
        test_rows = read_list(root / "test.csv", event_dir="event_thr_10")
        lengths = [np.load(r.path, mmap_mode="r").shape[0] for r in test_rows]
        gb = sum(r.path.stat().st_size + r.event_path.stat().st_size for r in rows + test_rows)
        emit(
            bench="train.generate",
            seconds=round(gen, 2),
            files=2 * (len(rows) + len(test_rows)),
            gigabytes=round(gb / 1e9, 2),
            mean_test_T=round(float(np.mean(lengths)), 1),
            **common,
        )

        ds = get_spec("ucfcrime")
        t0 = time.perf_counter()
        bank = build_bank(rows, ds, dim, workers=args.workers, progress=False)
        t_bank = time.perf_counter() - t0
        emit(
            bench="train.bank",
            seconds=round(t_bank, 2),
            rows=len(rows),
            rows_per_s=round(len(rows) / t_bank, 1),
            peak_rss_gib=round(peak_rss_gib(), 2),
            **common,
        )

        torch.manual_seed(0)
        model = IEFVAD(ModelConfig(dim=dim)).to(device)
        step_model = torch.compile(model) if args.compile else model
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
        sampler = BatchSampler(bank.labels, batch, paired=True, seed=0)
        t0 = time.perf_counter()
        dev_bank = DeviceBank(bank, device)
        sync(device)
        t_upload = time.perf_counter() - t0
        shift = kl_shift(model.cfg)
        times = []
        for idx in sampler.epoch():
            s = time.perf_counter()
            img, evt, lens, labels = dev_bank.gather(idx)
            with autocast(device, args.amp):
                out = step_model(img, evt, lens)
            loss = ief_vad_loss(out, labels, lens, 1.0, shift).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync(device)
            times.append(time.perf_counter() - s)
        epoch = float(np.sum(times))
        steady = float(np.median(times[1:])) if len(times) > 1 else times[0]
        emit(
            bench="train.epoch",
            seconds=round(epoch, 3),
            steps=len(times),
            first_step_s=round(times[0], 4),
            median_step_s=round(steady, 4),
            videos_per_s=round(2 * batch * len(times) / epoch, 1),
            batch=f"{batch}+{batch}",
            bank_resident=dev_bank.resident,
            bank_upload_s=round(t_upload, 2),
            **common,
        )

        t0 = time.perf_counter()
        test = load_test_set(test_rows, dim, workers=args.workers, progress=False)
        t_read = time.perf_counter() - t0
        predict(model, test, device, amp=args.amp)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        predict(model, test, device, batch_size=128, amp=args.amp)
        sync(device)
        t_pred = time.perf_counter() - t0
        fields = {}
        if not args.skip_reference_loop:
            model.eval()
            t0 = time.perf_counter()
            with torch.no_grad():
                for r in test_rows:  # the reference: one video at a time, read from disk
                    img = torch.from_numpy(chunk(np.load(r.path))).to(device)
                    evt = torch.from_numpy(chunk(np.load(r.event_path))).to(device)
                    with autocast(device, args.amp):
                        torch.sigmoid(model(img, evt).logits).cpu()
            sync(device)
            fields["reference_loop_s"] = round(time.perf_counter() - t0, 3)
        emit(
            bench="train.test_pass",
            videos=len(test_rows),
            read_s=round(t_read, 3),
            predict_s=round(t_pred, 3),
            **fields,
            **common,
        )
        # one in-training evaluation (--select test / --eval_every): features already in
        # memory, a forward pass and the headline metrics; "before" is the padded 256-snippet
        # pass plus the full metrics (per class, abnormal-only) that it used to run
        gt = load_gt(root / "gt.npy")
        t0 = time.perf_counter()
        pred = predict(model, test, device, amp=args.amp)
        sync(device)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        selection_metrics(pred, gt, test_rows, ds)
        t_sel = time.perf_counter() - t0
        t0 = time.perf_counter()
        predict(model, test, device, amp=args.amp, transform=lambda i, e, c: (i, e))
        sync(device)
        t_padded = time.perf_counter() - t0
        t0 = time.perf_counter()
        compute_metrics(pred, gt, test_rows, ds, detection=False)
        t_full = time.perf_counter() - t0
        emit(
            bench="train.eval_in_training",
            seconds=round(t_fast + t_sel, 3),
            predict_s=round(t_fast, 3),
            metrics_s=round(t_sel, 3),
            before_s=round(t_padded + t_full, 3),
            before_predict_padded_s=round(t_padded, 3),
            before_full_metrics_s=round(t_full, 3),
            videos=len(test_rows),
            chunks=int(test.image.shape[0]),
            **common,
        )
        emit(
            bench="train.ten_epochs",
            seconds=round(t_bank + t_upload + 10 * epoch + t_read + t_pred, 1),
            **common,
        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
