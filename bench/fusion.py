"""Cost of each fusion rule: one JSON line per (fusion, size).

    python bench/fusion.py                  # CI size on a CPU (B=8, T=256, D=32; seconds)
    python bench/fusion.py --size paper     # D=768, 8 heads, 10 refinement blocks, B=16

Figures (``bench`` key):

* ``fusion.step``: a whole training step of the model (forward, loss, backward), median of
  ``--repeat`` runs after one warm-up, milliseconds;
* ``fusion.rule``: the fusion rule alone on random ``[B, T, D]`` means and log-variances
  (forward + backward), the part that differs between variants (the Kalman rules are a Python
  loop over T).
* ``fusion.recipe``: a whole training step of ``reference`` with a reliability recipe or the
  null slot (docs/fusion.md, "Weights that follow reliability"): ``--recipes``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from iefvad.engine.reliability import RECIPE_MODEL, make_step  # noqa: E402
from iefvad.engine.reliability import RECIPES as RECIPES_BY_NAME  # noqa: E402
from iefvad.models.losses import ief_vad_loss  # noqa: E402
from iefvad.models.model import FUSIONS, IEFVAD, ModelConfig, kl_shift  # noqa: E402

_CORRUPT = {"kinds": ["noise", "attenuate", "drop", "freeze"]}
RECIPES = {  # name: (ModelConfig fields, TrainConfig.uncertainty record)
    "reference": ({"attention_sink": False}, {}),
    "null_slot": ({"attention_sink": True}, {}),
    "corrupt": ({"attention_sink": False}, {"corrupt": _CORRUPT}),
    "corrupt+nll": (
        {"attention_sink": False},
        {"corrupt": _CORRUPT, "reliability": {"loss": "gaussian"}},
    ),
    "reliable_other": (
        {"attention_sink": False, "weight_power": 3.0},
        {"recipe": "reliable", "reliability": {"target": "other"}},
    ),
    "reliable": ({"attention_sink": False, "weight_power": 3.0}, {"recipe": "reliable"}),
    "reliable_corruption": (  # issue 21: the corruption target, clean pass on hit rows only
        {"attention_sink": False, "weight_power": 3.0, "variance_temporal": True},
        {"recipe": "reliable", "reliability": {"target": "corruption"}},
    ),
    "reliable_detector": (  # issue 21: the detector loss, no second pass
        {"attention_sink": False, "weight_power": 3.0, "variance_temporal": True},
        {"recipe": "reliable", "reliability": {"loss": "detector"}},
    ),
    "detector_NFh": (  # issue 21 round 3: normal rows only, freeze, MLP on the stats
        {
            "attention_sink": False,
            "weight_power": 3.0,
            "variance_temporal": True,
            "temporal_hidden": 16,
        },
        {
            "recipe": "reliable",
            "corrupt": {
                "kinds": ["noise", "drop", "freeze"],
                "rows": "normal",
                "prob": 0.75,
                "sigma": [2.0, 4.0],
            },
            "reliability": {"loss": "detector"},
        },
    ),
    "detector": (  # issue 21 round 4: --recipe detector (SF), its model fields included
        {"attention_sink": False, **RECIPE_MODEL["detector"]},
        {"recipe": "detector"},
    ),
}

SIZES = {  # batch (rows per step), D, heads, refinement blocks
    "ci": (8, 32, 2, 2),
    "paper": (16, 768, 8, 10),
}


def timed(fn, repeat: int, device: torch.device) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out.append(time.perf_counter() - t0)
    return 1000 * statistics.median(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=SIZES, default="ci")
    p.add_argument("--fusions", nargs="+", default=list(FUSIONS), choices=FUSIONS)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--recipes", nargs="*", default=None, choices=RECIPES, help="time these recipes only"
    )
    args = p.parse_args()
    device = torch.device(args.device)
    b, d, heads, k = SIZES[args.size]
    t = 256
    machine = f"{platform.machine()} {platform.processor() or ''}".strip()
    g = torch.Generator().manual_seed(0)
    img = torch.randn(b, t, d, generator=g).to(device)
    evt = torch.randn(b, t, d, generator=g).to(device)
    lengths = torch.randint(t // 4, t + 1, (b,), generator=g).to(device)
    labels = (torch.arange(b) % 2).float().to(device)
    if args.recipes is not None:
        for name in args.recipes or list(RECIPES):
            fields, record = RECIPES[name]
            torch.manual_seed(0)
            cfg = ModelConfig(dim=d, heads=heads, refine_steps=k, **fields)
            model = IEFVAD(cfg).to(device).train()
            if record.get("recipe"):
                named = RECIPES_BY_NAME[record["recipe"]].to_record()
                named["reliability"].update(record.get("reliability", {}))
                named["corrupt"].update(record.get("corrupt", {}))
                record = named
            hook = make_step(record, cfg.modalities, 0, cfg.weight_power)

            def rstep(model=model, cfg=cfg, hook=hook) -> None:
                extra = 0.0
                if hook is None:
                    out = model(img, evt, lengths)
                else:
                    out, extra = hook(model, img, evt, lengths, labels)
                loss = ief_vad_loss(out, labels, lengths, 1.0, kl_shift(cfg), True).total
                (loss + extra).backward()

            ms = timed(rstep, args.repeat, device)
            common = dict(size=args.size, recipe=name, batch=b, t=t, dim=d, device=str(device))
            print(json.dumps(dict(bench="fusion.recipe", ms=round(ms, 1), **common)), flush=True)
        return
    for fusion in args.fusions:
        torch.manual_seed(0)
        cfg = ModelConfig(dim=d, heads=heads, refine_steps=k, fusion=fusion)
        model = IEFVAD(cfg).to(device).train()
        shift = kl_shift(cfg)

        def step(model=model, shift=shift, cfg=cfg) -> None:
            out = model(img, evt, lengths)
            ief_vad_loss(out, labels, lengths, 1.0, shift, True, cfg.modalities).total.backward()

        ms = timed(step, args.repeat, device)
        common = dict(size=args.size, fusion=fusion, batch=b, t=t, dim=d, device=str(device))
        print(json.dumps(dict(bench="fusion.step", ms=round(ms, 1), **common, machine=machine)))
        if fusion in ("reference", "student_t", "kalman", "kalman_smooth"):
            mu = [torch.randn(b, t, d, device=device, requires_grad=True) for _ in range(4)]
            valid = torch.arange(t, device=device)[None, :] < lengths[:, None]
            pad = ~valid

            def rule(model=model, mu=mu, pad=pad) -> None:
                f, wi, _ = model.temporal.fuse(mu[0], mu[1], mu[2], mu[3], pad)
                (f.sum() + wi.sum()).backward()

            ms = timed(rule, args.repeat, device)
            print(json.dumps(dict(bench="fusion.rule", ms=round(ms, 1), **common)), flush=True)


if __name__ == "__main__":
    main()
