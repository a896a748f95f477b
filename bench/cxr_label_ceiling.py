"""How far can a radiograph model agree with these reference masks? Prints numbers, asserts nothing.

    lungseg train --task cxr --data ../shared/data/cxr/montgomery --data ../shared/data/cxr/shenzhen \\
        --split LungSegLib/models/cxr_split.csv --out cache/ --cache cache/cxr.npz --prepare-only
    python bench/cxr_label_ceiling.py --cache cache/cxr.npz [--epochs 16 --lr 1e-3]

1. Agreement of the shipped default model with the masks of each split and data set, on the model grid
   (both lungs merged), and how many masks reach more than 8 % beyond the model's lungs (in Shenzhen
   these are masks that take in the region behind the heart; the Montgomery masks never do).
2. Capacity check (--epochs > 0): fine-tune the model on the training split with no augmentation. If
   training Dice climbs while validation Dice does not, the model is not short of capacity: what keeps
   unseen radiographs below that level is the variation between the reference masks themselves.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from LungSegLib import data
from LungSegLib.networks import find_card, load_model
from LungSegLib.train import items_for


def merged_dice(model, items, batch=32) -> tuple[np.ndarray, np.ndarray]:
    """Per-item Dice of both lungs merged, plus the share of each mask lying outside the prediction."""
    model.eval()
    dice, beyond = [], []
    with torch.inference_mode():
        for k in range(0, len(items), batch):
            x = torch.from_numpy(np.stack([i["image"] for i in items[k:k + batch]]).astype(np.float32) / 255)
            ref = np.stack([i["label"] for i in items[k:k + batch]])[:, 0] > 0
            pred = model(x).argmax(1).numpy() > 0
            dice += list(2 * (pred & ref).sum((1, 2)) / (pred.sum((1, 2)) + ref.sum((1, 2))))
            beyond += list((ref & ~pred).sum((1, 2)) / ref.sum((1, 2)))
    model.train()
    return np.array(dice), np.array(beyond)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", required=True, help="npz written by lungseg train --task cxr --prepare-only")
    p.add_argument("--arch", default=None, help="unet or resunet (default: the default cxr model)")
    p.add_argument("--epochs", type=int, default=0, help="capacity check: epochs without augmentation")
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args()
    torch.manual_seed(0)
    cache = data.load_cache(args.cache)
    card = find_card("cxr", args.arch)
    model = load_model(card, None, "cpu")
    parts = {s: items_for(cache, s, "cxr") for s in ("train", "val", "test")}
    print(f"model {card['name']}: Dice of both lungs on the model grid; masks > 8 % beyond the prediction")
    for dataset in ("MCUCXR", "CHNCXR"):
        for split, items in parts.items():
            sel = [i for i in items if i["case"].startswith(dataset)]
            if sel:
                d, b = merged_dice(model, sel)
                print(f"  {dataset} {split:5s} {len(sel):3d} cases: mean {d.mean():.4f} median {np.median(d):.4f} "
                      f"worst {d.min():.4f}; masks beyond: {(b > 0.08).sum()} ({100 * (b > 0.08).mean():.0f} %)")
    if args.epochs <= 0:
        return
    from monai.losses import DiceCELoss

    train, val = parts["train"], parts["val"]
    x = torch.from_numpy(np.stack([i["image"] for i in train]).astype(np.float32) / 255)
    y = torch.from_numpy(np.stack([i["label"] for i in train]).astype(np.int64))
    seen = train[::4]  # a quarter of the training radiographs, to keep the check fast
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    print(f"capacity check: epoch 0 train {merged_dice(model, seen)[0].mean():.4f} "
          f"val {merged_dice(model, val)[0].mean():.4f}", flush=True)
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        for idx in torch.randperm(len(x)).split(16):
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"capacity check: epoch {epoch} train {merged_dice(model, seen)[0].mean():.4f} "
              f"val {merged_dice(model, val)[0].mean():.4f} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
