"""``lungseg train``: train a lung network (cxr, ct2d, ct3d) with MONAI on the exact inputs inference uses.

Steps: find image/mask pairs (:mod:`.data`), split by patient, prepare every case on the model grid
(cached as a compact npz, reusable with ``--cache``), train with MONAI augmentation and DiceCE loss,
keep the best checkpoint on validation Dice, write ``<name>.pt`` (state dict), ``<name>.json`` (model
card), ``<name>_curve.png``. Multi-process: ``torchrun --nproc_per_node N -m LungSegLib.train ...``
(DDP; gloo on CPU, nccl on GPU). Once a cache exists, training needs only torch, monai and numpy.

Example: lungseg train --task cxr --arch unet --data data/cxr/montgomery --data data/cxr/shenzhen \\
         --split LungSegLib/models/cxr_split.csv --out models/ --epochs 100
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from .errors import LungSegError
from .augment import train_transforms
from .networks import default_card
from .train_card import write_card

HU_RANGE = (-1024, 600)
CT2D_PIXEL_MM = (2.5, 1.4, 1.4)  # typical (z, y, x) mm of a ct2d model slice: a 360 mm body box in 256 pixels


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="lungseg train", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, choices=("cxr", "ct2d", "ct3d"))
    p.add_argument("--arch", default="unet", choices=("unet", "resunet"))
    p.add_argument("--data", action="append", default=[], help="data folder (repeatable); see LungSegLib.data")
    p.add_argument("--out", required=True, help="output folder for <task>_<arch>.pt/.json/_curve.png")
    p.add_argument("--split", help="CSV case,split (train/val/test); made and saved in --out if absent")
    p.add_argument("--cache", help="npz of prepared arrays: read if it exists, else written")
    p.add_argument("--prepare-only", action="store_true", help="write the cache and stop")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--time-limit", type=float, default=0, help="minutes; shortens the schedule to fit")
    p.add_argument("--batch-size", type=int, default=0, help="default 16 (2D) / 2 volumes (3D)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, default=-1, help="data-loader workers; -1 = auto")
    p.add_argument("--repeats", type=int, default=0, help="passes over the training cases per epoch")
    p.add_argument("--max-cases", type=int, default=0, help="use only the first N cases per split (tests)")
    p.add_argument("--samples-per-epoch", type=int, default=0,
                   help="draw this many random training items per epoch (0 = all): shorter epochs on a CPU")
    p.add_argument("--resume", action="store_true", help="continue from <out>/<name>.ckpt.pt")
    p.add_argument("--checkpoint", help="resume checkpoint path (default <out>/<name>.ckpt.pt)")
    p.add_argument("--name", help="model name (default <task>_<arch>)")
    p.add_argument("--init", help="start from these weights (state dict), e.g. to fine-tune")
    p.add_argument("--lowres-prob", type=float, default=0.0,
                   help="CT: probability of simulated coarse in-plane resolution (0.25-1 x)")
    p.add_argument("--dense-prob", type=float, default=0.6, help="CT: probability of synthetic dense lung")
    p.add_argument("--dense-max-fraction", type=float, default=0.6, help="CT: largest dense share of the lung")
    p.add_argument("--opacity-prob", type=float, default=0.0,
                   help="CXR: probability of a synthetic opacity painted inside the lung (label kept)")
    p.add_argument("--families", nargs="*", default=[],
                   help="CT: train with these pathology-simulator families (LungSegLib.pathology) instead of "
                        "the dependent band + blobs; 'trained' = every family not held out")
    p.add_argument("--keep", choices=("best", "last"), default="best",
                   help="weights to write: the best validation epoch, or the final one (no selection on validation)")
    p.add_argument("--acquisition-prob", type=float, default=0.0,
                   help="CT with --families: probability of simulated acquisition variation")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------- data
def load_or_prepare(args, card) -> dict:
    from . import data

    if args.cache and Path(args.cache).is_file():
        return data.load_cache(args.cache)
    if not args.data:
        raise LungSegError("give --data DIR (or an existing --cache FILE)")
    pairs = data.find_pairs(args.data)
    if args.split:
        split = data.read_split(args.split)
    else:
        groups = {c: str(Path(i).parent.parent if args.task == "cxr" else Path(i).parent) for c, i, _ in pairs}
        fr = (0.7, 0.15, 0.15) if len(pairs) >= 20 else (0.75, 0.25, 0.0)
        split = data.make_split([c for c, _, _ in pairs], fr, args.seed, groups)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        data.write_split(Path(args.out) / f"{args.task}_split.csv", split)
    if args.max_cases:
        keep, seen = {}, {}
        for c, _, _ in pairs:
            s = split.get(c)
            if s and seen.get(s, 0) < args.max_cases:
                keep[c], seen[s] = s, seen.get(s, 0) + 1
        split = keep
    Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
    return data.build_cache(args.task, card["input"], pairs, split, args.cache, progress=not args.no_progress)


def items_for(cache: dict, part: str, task: str) -> list:
    """Dataset items: one per radiograph / CT slice / CT volume, channel-first uint8 arrays."""
    items = []
    for case, s, x, y in zip(cache["cases"], cache["splits"], cache["x"], cache["y"]):
        if s != part:
            continue
        if task == "ct2d" and part == "train":
            items += [{"image": x[k][None], "label": y[k][None], "case": case} for k in range(x.shape[0])]
        elif task == "cxr":
            items.append({"image": x.reshape((1,) + x.shape[-2:]), "label": y.reshape((1,) + y.shape[-2:]),
                          "case": case})
        else:
            items.append({"image": x[None], "label": y[None], "case": case})
    return items


# ---------------------------------------------------------------------------------------- helpers
def setup_distributed(device_arg: str):
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
    if device_arg == "cuda" and not torch.cuda.is_available():
        raise LungSegError("--device cuda but no CUDA GPU is available")
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return world, rank, device


def agree(value: float, device, world: int) -> float:
    """Rank 0's value on every rank (so all ranks stop / schedule alike)."""
    if world == 1:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(value)], device=device)
    dist.broadcast(t, 0)
    return float(t.item())


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def dense_copies(items, seed: int) -> list:
    """CT validation items with the posterior 25 % of the lung made dense (as the stress test does)."""
    from .augment import make_dense_case
    from .data import to_uint8

    out = []
    for k, it in enumerate(items):
        hu = it["image"][0].astype(np.float32) / 255.0 * (HU_RANGE[1] - HU_RANGE[0]) + HU_RANGE[0]
        dense, _ = make_dense_case(hu, it["label"][0] > 0, 0.25, seed + k)
        out.append(dict(it, image=to_uint8((dense - HU_RANGE[0]) / (HU_RANGE[1] - HU_RANGE[0]))[None]))
    return out


def validate(model, items, task, card, device) -> float:
    """Mean per-case Dice of right and left lung on the model grid (what selects the best checkpoint)."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.metrics import compute_dice
    from monai.networks.utils import one_hot

    scores = []  # compute_dice, not DiceMetric.aggregate: that would sync ranks, and only rank 0 validates
    model.eval()
    with torch.inference_mode():
        for it in items:
            x = torch.from_numpy(it["image"].astype(np.float32) / 255.0).to(device)
            if task == "ct3d":
                logits = sliding_window_inference(x[None], card["input"]["roi"], 2, model, overlap=0.25,
                                                  mode="gaussian")
                pred, y = logits.argmax(1, keepdim=True), torch.from_numpy(it["label"][None])
            elif task == "ct2d":
                x = x[0][:, None]
                pred = torch.cat([model(x[k:k + 32]).argmax(1, keepdim=True) for k in range(0, len(x), 32)])
                pred, y = pred.permute(1, 0, 2, 3)[None], torch.from_numpy(it["label"][None])
            else:
                pred, y = model(x[None]).argmax(1, keepdim=True), torch.from_numpy(it["label"][None])
            d = compute_dice(one_hot(pred.cpu(), 3), one_hot(y.long(), 3), include_background=False)
            scores.append(float(torch.nanmean(d)))
    model.train()
    return float(np.mean(scores))


# ------------------------------------------------------------------------------------------ train
def train(args, cache: dict, card: dict, world: int, rank: int, device) -> dict:
    import torch
    from monai.data import DataLoader, Dataset
    from monai.losses import DiceCELoss
    from tqdm import tqdm

    from .networks import build_network

    task, out = args.task, Path(args.out)
    name = args.name or card["name"]
    ckpt_path = Path(args.checkpoint or out / f"{name}.ckpt.pt")
    seed_everything(args.seed + rank)
    roi = card["input"].get("roi")
    train_items, val_items = items_for(cache, "train", task), items_for(cache, "val", task)
    if not train_items or not val_items:
        raise LungSegError(f"need training and validation cases; got {len(train_items)} / {len(val_items)}")
    repeats = args.repeats or (8 if task == "ct3d" else 1)
    tfm = train_transforms(task, roi, args.dense_prob, args.dense_max_fraction, args.lowres_prob,
                           args.opacity_prob, args.families, args.acquisition_prob,
                           card["input"].get("spacing_mm", CT2D_PIXEL_MM))
    tfm.set_random_state(seed=args.seed + rank)
    ds = Dataset(train_items * repeats, tfm)
    sampler = None
    if world > 1:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    elif args.samples_per_epoch:
        from torch.utils.data import RandomSampler

        sampler = RandomSampler(ds, num_samples=min(args.samples_per_epoch, len(ds)))
    workers = args.workers if args.workers >= 0 else (0 if device.type == "cpu" else min(8, (os.cpu_count() or 2) // 2))
    bs = args.batch_size or (2 if task == "ct3d" else 16)
    loader = DataLoader(ds, batch_size=bs, shuffle=sampler is None, sampler=sampler, num_workers=workers,
                        drop_last=len(ds) > bs * world, persistent_workers=workers > 0)
    if sampler is not None and not hasattr(sampler, "set_epoch"):
        sampler = None  # only DistributedSampler needs set_epoch below
    dense_val = dense_copies(val_items, args.seed) if task != "cxr" else []
    model = build_network(card).to(device)
    if args.init:
        from .networks import load_state

        model.load_state_dict(load_state(args.init, device))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "total": args.epochs, "seconds": 0.0,
             "history": {"loss": [], "val_dice": []}}
    if args.resume:
        if not ckpt_path.is_file():
            raise LungSegError(f"--resume: no checkpoint {ckpt_path}")
        ck = torch.load(str(ckpt_path), map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        state = ck["state"]
        state["total"] = max(state["total"], args.epochs)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    amp = device.type == "cuda"
    t_start = time.time() - state["seconds"]
    bar = tqdm(total=state["total"], initial=state["epoch"], desc=name, disable=args.no_progress or rank != 0,
               mininterval=1.0 if sys.stderr.isatty() else 30.0)
    epoch = start_epoch = state["epoch"]
    seconds_after_first = 0.0
    while epoch < state["total"]:
        if sampler is not None:
            sampler.set_epoch(epoch)
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * epoch / state["total"]))
        for g in opt.param_groups:
            g["lr"] = lr
        losses = []
        for batch in loader:
            x, y = batch["image"].to(device, non_blocking=True), batch["label"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(net(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        epoch += 1
        dice = validate(model, val_items, task, card, device) if rank == 0 else 0.0
        if dense_val and rank == 0:  # CT: select on clean and dense-lung validation alike
            dense_dice = validate(model, dense_val, task, card, device)
            state["history"].setdefault("val_dice_clean", []).append(dice)
            state["history"].setdefault("val_dice_dense", []).append(dense_dice)
            dice = 0.5 * (dice + dense_dice)
        state["history"]["loss"].append(float(np.mean(losses)) if losses else float("nan"))
        state["history"]["val_dice"].append(dice)
        state["epoch"], state["seconds"] = epoch, time.time() - t_start
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            improved = dice > state["best"]
            if improved:
                state["best"], state["best_epoch"] = dice, epoch
            if improved or args.keep == "last":
                torch.save(model.state_dict(), out / f"{name}.pt")
            ckpt_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state}, ckpt_path)
            bar.update(1)
            bar.set_postfix(loss=f"{state['history']['loss'][-1]:.4f}", val_dice=f"{dice:.4f}",
                            best=f"{state['best']:.4f}")
            if not sys.stderr.isatty():
                print(f"{name} epoch {epoch}/{state['total']} loss {state['history']['loss'][-1]:.4f} "
                      f"val_dice {dice:.4f} best {state['best']:.4f} ({state['seconds']:.0f}s)", flush=True)
        if epoch == start_epoch + 1:
            seconds_after_first = state["seconds"]  # the first epoch also starts the loader workers
        if args.time_limit and epoch == start_epoch + 3:
            per_epoch = (state["seconds"] - seconds_after_first) / 2
            fit = int(args.time_limit * 60 / per_epoch)
            state["total"] = int(agree(max(epoch + 1, min(state["total"], fit)), device, world))
            bar.total = state["total"]
        if args.time_limit and agree(state["seconds"] > args.time_limit * 60, device, world):
            break
    bar.close()
    return state


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.families == ["trained"]:
        from .pathology import TRAINED

        args.families = list(TRAINED)
    card = default_card(args.task, args.arch)
    args.cache = args.cache or str(Path(args.out) / f"{args.task}_cache.npz")
    world, rank, device = setup_distributed(args.device)
    try:
        if rank == 0 or Path(args.cache).is_file():
            cache = load_or_prepare(args, card)
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
            if rank != 0:
                cache = load_or_prepare(args, card)
        if args.prepare_only:
            return 0
        if cache["task"] != args.task:
            raise LungSegError(f"cache {args.cache} holds {cache['task']} data, not {args.task}")
        state = train(args, cache, card, world, rank, device)
        if rank == 0:
            write_card(args, card, cache, state, world, device)
            print(f"best validation Dice {state['best']:.4f} at epoch {state['best_epoch']}; "
                  f"weights {Path(args.out) / ((args.name or card['name']) + '.pt')}")
    except LungSegError as e:
        print(f"lungseg train: error: {e}", file=sys.stderr)
        return 2
    finally:
        if world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
