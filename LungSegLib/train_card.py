"""What a training run leaves beside its weights: the model card (``<name>.json``: data, split, schedule,
augmentation, selection), the per-epoch history and the training-curve PNG."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .augment import augmentation_text
from .networks import count_parameters


def plot_curve(history: dict, path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no training-curve PNG", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ep = np.arange(1, len(history["loss"]) + 1)
    ax.plot(ep, history["loss"], label="train loss (DiceCE)", color="tab:red")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(ep, history["val_dice"], label="val Dice (selection: R/L mean)", color="tab:blue")
    if history.get("val_dice_dense"):
        ax2.plot(ep[-len(history["val_dice_dense"]):], history["val_dice_dense"], label="dense-lung val Dice",
                 color="tab:green", lw=0.8)
    ax2.set_ylabel("validation Dice")
    ax2.set_ylim(max(0.0, min(history["val_dice"] or [0]) - 0.02), 1.0)
    ax.set_title(title)
    fig.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_card(args, card: dict, cache: dict, state: dict, world: int, device) -> dict:
    import torch

    from .networks import build_network

    name = args.name or card["name"]
    out = Path(args.out)
    parts = {s: sorted({c for c, p in zip(cache["cases"], cache["splits"]) if p == s}) for s in ("train", "val", "test")}
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    card = dict(card, weights=f"{name}.pt", version=time.strftime("%Y.%m.%d"),
                parameters=count_parameters(build_network(card)))
    card["training"] = {
        "cases": {k: len(v) for k, v in parts.items()}, "validation_cases": parts["val"] if len(parts["val"]) < 20 else None,
        "epochs_run": state["epoch"], "epochs_planned": args.epochs, "best_epoch": state["best_epoch"],
        "seconds": round(state["seconds"], 1), "machine": f"{world} x {device.type} ({gpu}), {os.cpu_count()} CPU cores",
        "batch_size": args.batch_size or (2 if args.task == "ct3d" else 16), "lr": args.lr, "seed": args.seed,
        "samples_per_epoch": args.samples_per_epoch or None,
        "loss": "MONAI DiceCELoss (softmax, 3 classes)", "optimizer": "AdamW, cosine schedule",
        "augmentation": augmentation_text(args.task, args.dense_prob, args.dense_max_fraction, args.lowres_prob,
                                          args.opacity_prob, args.families, args.acquisition_prob),
    }
    card["metrics"] = {"val_dice_model_grid": round(state["best"], 4)}
    if args.task != "cxr":
        card["training"]["selection"] = "best mean of clean and dense-lung (25 % dependent) validation Dice"
    if args.keep == "last":
        card["training"]["selection"] = "none: the final epoch is kept (validation Dice logged, not used)"
        card["metrics"] = {"val_dice_model_grid": round(state["history"]["val_dice"][-1], 4)}
    if args.init:
        card["training"]["initialised_from"] = Path(args.init).name
    (out / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    plot_curve(state["history"], out / f"{name}_curve.png", f"{name}: best val Dice {state['best']:.4f}")
    (out / f"{name}_history.json").write_text(json.dumps(state["history"]) + "\n")
    return card
