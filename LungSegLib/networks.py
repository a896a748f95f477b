"""MONAI network factories and the shipped-model registry (weights + model card side by side).

A model card (``models/<name>.json``) says how to build the network and how to feed it; the weights
file beside it holds only a state dict, loaded with ``weights_only=True`` so no code in it can run.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import LungSegError

MODEL_DIR = Path(__file__).parent / "models"
NUM_CLASSES = 3  # background, right lung, left lung

DEFAULT_NETWORKS = {
    # MONAI UNet; "resunet" = the same UNet with residual units in every block (MONAI's num_res_units)
    "unet": {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 0},
    "resunet": {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2},
}
TASK_DIMS = {"ct2d": 2, "cxr": 2, "ct3d": 3}
DEFAULT_INPUT = {
    "ct2d": {"size": [256, 256], "hu_range": [-1024, 600]},
    "cxr": {"size": [256, 256], "percentiles": [0.5, 99.5]},
    "ct3d": {"spacing_mm": [2.5, 2.5, 2.5], "roi": [96, 96, 96], "hu_range": [-1024, 600]},
}


def default_card(task: str, arch: str) -> dict:
    if task not in TASK_DIMS:
        raise LungSegError(f"unknown task {task!r}; expected one of {', '.join(TASK_DIMS)}")
    if arch not in DEFAULT_NETWORKS:
        raise LungSegError(f"unknown architecture {arch!r}; expected one of {', '.join(DEFAULT_NETWORKS)}")
    return {
        "name": f"{task}_{arch}", "version": "untrained", "task": task, "arch": arch,
        "network": {"spatial_dims": TASK_DIMS[task], "in_channels": 1, "out_channels": NUM_CLASSES,
                    **DEFAULT_NETWORKS[arch]},
        "input": dict(DEFAULT_INPUT[task]),
    }


def build_network(card: dict):
    from monai.networks.nets import UNet

    net = dict(card["network"])
    return UNet(spatial_dims=net["spatial_dims"], in_channels=net.get("in_channels", 1),
                out_channels=net.get("out_channels", NUM_CLASSES), channels=net["channels"],
                strides=net["strides"], num_res_units=net.get("num_res_units", 0),
                norm=net.get("norm", "batch"), dropout=net.get("dropout", 0.0))


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def shipped_cards() -> list:
    """Model cards in ``models/``: the JSON files that describe a network, or an ensemble of shipped networks
    (``"members"``); training histories are skipped."""
    cards = []
    for path in sorted(MODEL_DIR.glob("*.json")):
        card = json.loads(path.read_text())
        if not isinstance(card, dict) or "task" not in card or not ("network" in card or "members" in card):
            continue
        card["card_path"] = str(path)
        if "network" in card:
            card["weights_path"] = str(MODEL_DIR / card.get("weights", f"{path.stem}.pt"))
        cards.append(card)
    return cards


def card_named(name: str, cards: list | None = None) -> dict:
    """The shipped card called ``name`` (an ensemble names its members this way), from ``cards`` when the
    caller has already read them."""
    for card in shipped_cards() if cards is None else cards:
        if card["name"] == name:
            return card
    raise LungSegError(f"no shipped model named {name!r}: expected {MODEL_DIR / (name + '.json')} with its weights")


def validation_dice(card: dict) -> float:
    return float(card.get("metrics", {}).get("validation", {}).get("dice_mean", 0.0))


def robustness_dice(card: dict) -> float | None:
    """The worst family's mean Dice at 25 % dense lung in the card's robustness report (held-out families
    included), or None when the card has none."""
    value = card.get("metrics", {}).get("robustness", {}).get("dice_worst_family_25")
    return None if value is None else float(value)


def selection_dice(card: dict) -> float:
    """What ``auto`` ranks CT models by: the worst of the validation Dice, the card's external checks
    (other sites' volumes within the model's pixel range) and the worst pathology family of the robustness
    report. Two validation patients from the training site cannot show how a model travels, nor how it
    keeps dense lung; an external volume and unseen dense patterns can."""
    checks = [float(c["dice"]) for c in card.get("metrics", {}).get("external_checks", [])
              if c.get("dice") is not None]  # None: a check the model is not run on (pixels beyond its range)
    robust = robustness_dice(card)
    return min([validation_dice(card)] + checks + ([robust] if robust is not None else []))


def suits_spacing(card: dict, inplane_mm: float | None) -> bool:
    """False when a CT card declares the coarsest in-plane pixel it was trained for and the image is coarser:
    the slice-wise model then sees enlarged, blocky slices unlike anything in its training."""
    limit = card.get("input", {}).get("max_inplane_spacing_mm")
    return limit is None or inplane_mm is None or inplane_mm <= float(limit)


def best_validated_task(tasks, inplane_mm: float | None = None) -> str | None:
    """Among the tasks' default shipped models that suit the image's in-plane pixel size, the task whose model
    has the best :func:`selection_dice` (validation, external checks, pathology families)."""
    cards = [c for c in shipped_cards() if c.get("task") in tasks and c.get("default")
             and suits_spacing(c, inplane_mm)]
    return max(cards, key=selection_dice)["task"] if cards else None


def find_card(task: str, arch: str | None = None, cards: list | None = None) -> dict:
    """The shipped card for a task (and arch); without an arch, the task's default (best-validated) model.
    Networks shipped only as an ensemble's member (``ensemble_member_of``) are not offered on their own."""
    cards = [c for c in (shipped_cards() if cards is None else cards)
             if c.get("task") == task and not c.get("ensemble_member_of")]
    if arch:
        cards = [c for c in cards if c.get("arch") == arch]
    else:
        cards = sorted(cards, key=lambda c: not c.get("default", False))
    if not cards:
        want = f"{task}_{arch}" if arch else task
        raise LungSegError(f"no shipped model for {want}: expected {MODEL_DIR / (want + '.json')} with its weights; "
                           f"train one with 'lungseg train --task {task}' or pass --weights FILE")
    return cards[0]


def card_for_weights(path, task: str, arch: str) -> dict:
    """The card for a user's weights file: ``<stem>.json`` beside it when there is one (``lungseg train``
    writes both), so the model is fed as it was trained (input grid, mirror average); else the default."""
    beside = Path(path).with_suffix(".json")
    if not beside.is_file():
        return default_card(task, arch)
    try:
        card = json.loads(beside.read_text())
    except (OSError, ValueError) as e:
        raise LungSegError(f"model card {beside} beside the weights cannot be read ({e}); "
                           "fix or remove it to use the default card") from None
    if not isinstance(card, dict) or card.get("task") != task or "network" not in card or "input" not in card:
        raise LungSegError(f"model card {beside} beside the weights is not a {task} card (expected a "
                           f"'lungseg train' JSON with task {task!r}, network and input)")
    return dict(card, card_path=str(beside))


def load_state(path, device="cpu") -> dict:
    import torch

    path = Path(path)
    if not path.is_file():
        raise LungSegError(f"weights file {path} not found")
    try:
        state = torch.load(str(path), map_location=device, weights_only=True)
    except Exception as e:
        raise LungSegError(f"weights file {path} cannot be loaded safely ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:160]}); expected a PyTorch state dict") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise LungSegError(f"weights file {path} holds a {type(state).__name__}; expected a state dict")
    return state


def load_model(card: dict, weights_path=None, device="cpu"):
    """Build the card's network and load its weights; a mismatch names the file and the architecture."""
    model = build_network(card)
    path = weights_path or card.get("weights_path")
    if not path:
        raise LungSegError(f"model {card['name']}: no weights file given")
    try:
        state = load_state(path, device)
    except LungSegError as e:
        raise LungSegError(f"model {card['name']}: {e}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        net = card["network"]
        raise LungSegError(
            f"weights file {path} does not fit model {card['name']} (expected MONAI UNet, "
            f"{net['spatial_dims']}D, channels {net['channels']}, num_res_units {net.get('num_res_units', 0)}): "
            f"{str(e).splitlines()[0][:160]}") from None
    return model.to(device).eval()
