"""Segmentation engines. Each takes a canonical :class:`Image` (CT: LPS voxel order; CXR: 2D) and
returns uint8 labels on the same grid (0 background, 1 right lung, 2 left lung) plus model info."""

from __future__ import annotations

import os

import numpy as np

from .errors import CancelledError, LungSegError
from .image import Image
from .networks import card_for_weights, card_named, find_card, load_model, shipped_cards
from .postprocess import clean_labels
from . import preprocess as pp

ENGINE_TASK = {"ct2d": "ct2d", "ct3d": "ct3d", "cxr": "cxr"}


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise LungSegError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


_MODEL_CACHE: dict = {}


def model_for(engine: str, params, device: str):
    """(model, card): the shipped model for the engine/arch, or ``params.weights`` on the default card."""
    task = ENGINE_TASK[engine]
    arch = None if params.arch == "auto" else params.arch
    if params.weights:
        card = card_for_weights(params.weights, task, arch or "unet")
        card["version"] = "user weights"
    else:
        card = find_card(task, arch)
    return cached_model(card, params.weights or card.get("weights_path"), device), card


def cached_model(card: dict, path, device: str):
    """The card's network with the weights at ``path``, kept per (weights file, its mtime, device), so a
    batch loads each model once (two at a time: the ensemble's pair)."""
    key = (card["name"], str(path), os.path.getmtime(path) if path and os.path.exists(path) else None, device)
    if key not in _MODEL_CACHE:
        while len(_MODEL_CACHE) >= 2:
            del _MODEL_CACHE[next(iter(_MODEL_CACHE))]
        _MODEL_CACHE[key] = load_model(card, path, device)
    return _MODEL_CACHE[key]


def ensemble_members(params, device: str):
    """((ct3d model, card), (ct2d model, card), ensemble card): the members the shipped ``ct2d+ct3d`` card
    names, or the default ct3d and ct2d models when no ensemble card is shipped."""
    cards = shipped_cards()  # read once: the ensemble card and its members
    try:
        ensemble = find_card("ct2d+ct3d", cards=cards)
    except LungSegError:
        return model_for("ct3d", params, device), model_for("ct2d", params, device), None
    members = [card_named(ensemble["members"][task], cards) for task in ("ct3d", "ct2d")]
    return (*((cached_model(c, c["weights_path"], device), c) for c in members), ensemble)


def _cleaned(labels: np.ndarray, card: dict):
    """Post-process, keeping for QC how many large components the network produced before cleaning."""
    from .qc import count_large_components

    return clean_labels(labels), {**card, "raw_large_components": count_large_components(labels > 0)}


def _checked(progress, fraction, message):
    if progress is not None and progress(fraction, message) is False:
        raise CancelledError("cancelled by the user")


def mirrored_probabilities(model, x):
    """Softmax of the model averaged with its left-right mirror: flip the input, flip the output back and
    swap the right/left channels (labels are sided, so a plain flip would be wrong). A model card turns
    it on with ``"input": {"mirror_average": true}`` when it helped on validation."""
    import torch

    direct = torch.softmax(model(x), dim=1)
    mirror = torch.flip(torch.softmax(model(torch.flip(x, dims=[-1])), dim=1), dims=[-1])
    return (direct + mirror[:, [0, 2, 1]]) / 2


def ct2d_probabilities(image: Image, params, progress=None, model=None, card=None):
    """Yield (first slice, (Z, C, Y, X) class probabilities) per batch of slices of the slice model."""
    import torch

    device = pick_device(params.device)
    if model is None:
        model, card = model_for("ct2d", params, device)
    mirror = bool(card["input"].get("mirror_average", False))
    size, hu_range = card["input"]["size"], card["input"]["hu_range"]
    vol = image.array
    box = pp.body_box(vol)
    bs = int(params.batch_size)
    with torch.inference_mode():
        for start in range(0, vol.shape[0], bs):
            _checked(progress, start / vol.shape[0], f"slices {start + 1}-{min(vol.shape[0], start + bs)} "
                                                     f"of {vol.shape[0]}")
            x = torch.from_numpy(pp.slices_to_model(vol[start:start + bs], box, size, hu_range)).to(device)
            prob = mirrored_probabilities(model, x) if mirror else torch.softmax(model(x), dim=1)
            yield start, pp.slice_probabilities(prob.float().cpu().numpy(), box, vol[start:start + bs].shape)


def segment_ct2d(image: Image, params, progress=None):
    model, card = model_for("ct2d", params, pick_device(params.device))
    labels = np.zeros(image.array.shape, np.uint8)
    for start, prob in ct2d_probabilities(image, params, progress, model, card):
        labels[start:start + len(prob)] = np.argmax(prob, axis=1)
    return _cleaned(labels, card)


def window_count(shape, roi, overlap: float) -> int:
    """How many windows MONAI's sliding_window_inference visits (for progress): its scan interval
    (roi x (1 - overlap) along axes longer than the roi) over the image padded up to the roi."""
    from monai.data.utils import dense_patch_slices

    size = [max(int(s), int(r)) for s, r in zip(shape, roi)]
    interval = [int(r * (1 - overlap)) if s > r else int(r) for s, r in zip(size, roi)]
    return max(1, len(dense_patch_slices(size, roi, interval)))


def ct3d_low_probabilities(image: Image, params, progress=None, model=None, card=None):
    """(class probabilities (C, z, y, x) on the model's grid, that grid as a SimpleITK image)."""
    import SimpleITK as sitk
    import torch
    from monai.inferers import sliding_window_inference

    device = pick_device(params.device)
    if model is None:
        model, card = model_for("ct3d", params, device)
    spacing, roi, hu_range = card["input"]["spacing_mm"], card["input"]["roi"], card["input"]["hu_range"]
    _checked(progress, 0.05, f"resampling to {spacing} mm")
    low = pp.resample_volume(image, spacing)
    x = pp.scale_hu(sitk.GetArrayFromImage(low), hu_range)[None, None]
    windows = window_count(x.shape[2:], roi, overlap=0.25)
    calls = [0]

    def predictor(batch):  # called once per batch of windows: report and honour cancel between batches
        _checked(progress, 0.2 + 0.6 * min(1.0, calls[0] * 2 / windows),
                 f"3D sliding-window inference, window {min(windows, calls[0] * 2 + 1)} of {windows}")
        calls[0] += 1
        return model(batch)

    with torch.inference_mode():
        logits = sliding_window_inference(torch.from_numpy(x).to(device), roi_size=roi, sw_batch_size=2,
                                          predictor=predictor, overlap=0.25, mode="gaussian")
        return torch.softmax(logits, dim=1)[0].float().cpu().numpy(), low


def segment_ct3d(image: Image, params, progress=None):
    model, card = model_for("ct3d", params, pick_device(params.device))
    prob, low = ct3d_low_probabilities(image, params, progress, model, card)
    _checked(progress, 0.8, "resampling back to the input grid")
    return _cleaned(pp.labels_from_low_grid(prob, low, image), card)


def segment_ct_ensemble(image: Image, params, progress=None):
    """``ct2d+ct3d``: the mean of the slice model's and the 3D model's class probabilities. The two see
    dense lung differently (slices: fine in-plane detail; 3D: context above and below, so a liver dome or
    the aorta is not taken for consolidated lung), and their mistakes only partly coincide."""
    device = pick_device(params.device)
    (model3, card3), (model2, card2), ensemble = ensemble_members(params, device)
    prob3, low = ct3d_low_probabilities(image, params, _scaled(progress, 0.0, 0.4), model3, card3)
    channels = pp.low_grid_channels(prob3, low)
    labels = np.zeros(image.array.shape, np.uint8)
    for start, prob2 in ct2d_probabilities(image, params, _scaled(progress, 0.4, 0.95), model2, card2):
        prob3_slab = pp.probabilities_from_low_grid(channels, image, start, len(prob2)).transpose(1, 0, 2, 3)
        labels[start:start + len(prob2)] = np.argmax(prob2 + prob3_slab, axis=1)  # argmax of the mean
    members = f"{card2['name']} {card2.get('version')} + {card3['name']} {card3.get('version')}"
    info = {"name": ensemble["name"] if ensemble else f"{card2['name']}+{card3['name']}",
            "version": f"{ensemble.get('version')} ({members})" if ensemble else members,
            "task": "ct2d+ct3d", "arch": "ensemble"}
    return _cleaned(labels, info)


def _scaled(progress, lo: float, hi: float):
    """A progress callback mapping 0..1 onto lo..hi of the caller's (for one part of an ensemble)."""
    if progress is None:
        return None
    return lambda fraction, message: progress(lo + (hi - lo) * fraction, message)


def segment_cxr(image: Image, params, progress=None):
    import torch

    device = pick_device(params.device)
    model, card = model_for("cxr", params, device)
    size, pct = card["input"]["size"], card["input"]["percentiles"]
    _checked(progress, 0.2, "radiograph inference")
    x = torch.from_numpy(pp.radiograph_to_model(image.array, size, pct)).to(device)
    with torch.inference_mode():
        prob = torch.softmax(model(x), dim=1)[0].float().cpu().numpy()
    _checked(progress, 0.8, "resizing to the radiograph")
    up = pp.resize(prob, image.array.shape, mode="bilinear")
    # a card may lower the background's weight in the argmax: a decision threshold chosen on validation films,
    # where opaque lung sits near 50/50 and the radiologists' masks count it as lung
    up[0] *= float(card["input"].get("background_weight", 1.0))
    return _cleaned(np.argmax(up, axis=0).astype(np.uint8), card)


def segment_hu_engine(image: Image, params, progress=None):
    from .hu_engine import segment_hu

    info = {}
    labels = segment_hu(image.array, image.spacing, progress, info=info)
    return labels, {"name": "hu-threshold", "version": "1", "task": "hu", "arch": None,
                    "raw_large_components": info.get("large_components")}


ENGINES = {"hu": segment_hu_engine, "ct2d": segment_ct2d, "ct3d": segment_ct3d, "ct2d+ct3d": segment_ct_ensemble,
           "cxr": segment_cxr}
