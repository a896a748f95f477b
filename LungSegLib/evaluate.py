"""``lungseg evaluate``: run the real pipeline (:func:`pipeline.run_case`) on images with reference masks
and report MONAI Dice, IoU and 95 % Hausdorff distance (mm where the spacing is known, else pixels),
plus volume (CT) or area (CXR) error, per case and as a summary JSON.

Pairs: ``--images DIR --masks DIR`` paired by file stem (``a.jpg`` + ``a.png``), or one folder in the
``<case>_ct.nii.gz`` + ``<case>_lungs.nii.gz`` layout (give it as both, or only ``--images``).
Reference masks with merged lungs get their sides derived like training does (:mod:`.data`).

Example: lungseg evaluate --images data/cxr/montgomery/images --masks data/cxr/montgomery/masks \\
         --split LungSegLib/models/cxr_split.csv --subset test --engine cxr --json cxr_test.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .errors import LungSegError
from .params import ENGINES

STRUCTURES = (("right", (1,)), ("left", (2,)), ("both", (1, 2)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="lungseg evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", help="folder of images (or of <case>_ct/<case>_lungs pairs)")
    p.add_argument("--data", action="append", default=[], help="data folder in a training layout (repeatable)")
    p.add_argument("--masks", help="folder of reference masks with the images' file names")
    p.add_argument("--engine", default="auto", choices=ENGINES)
    p.add_argument("--arch", default="unet", choices=("unet", "resunet"))
    p.add_argument("--weights", default="", help="weights file instead of the shipped model")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--split", help="CSV case,split: evaluate only the cases of --subset")
    p.add_argument("--subset", default="test", help="which split part to evaluate with --split")
    p.add_argument("--json", required=True, help="output JSON (per case + summary)")
    return p.parse_args(argv)


def overlap_metrics(pred: np.ndarray, ref: np.ndarray, spacing=None) -> dict:
    """Dice, IoU, HD95 per structure (right, left, both) with MONAI metrics; HD95 in the units of
    ``spacing`` (given in numpy axis order), voxels when None. Empty structure -> NaN distances."""
    import torch
    from monai.metrics import DiceMetric, HausdorffDistanceMetric, MeanIoU

    out = {}
    for name, values in STRUCTURES:
        p = torch.from_numpy(np.isin(pred, values))[None, None].float()
        r = torch.from_numpy(np.isin(ref, values))[None, None].float()
        p2, r2 = torch.cat([1 - p, p], 1), torch.cat([1 - r, r], 1)
        dice = DiceMetric(include_background=False)(p2, r2).item()
        iou = MeanIoU(include_background=False)(p2, r2).item()
        if p.sum() > 0 and r.sum() > 0:
            hd = HausdorffDistanceMetric(include_background=False, percentile=95)(
                p2, r2, spacing=list(spacing) if spacing is not None else None).item()
        else:
            hd = float("nan")
        out[name] = {"dice": dice, "iou": iou, "hd95": hd}
    return out


def evaluate_labels(pred: np.ndarray, ref: np.ndarray, spacing_xyz, spacing_known: bool, unit_size: float) -> dict:
    """Metrics for one case: predicted and reference labels (0/1/2) on the same grid."""
    spacing = tuple(float(s) for s in reversed(spacing_xyz[: pred.ndim])) if spacing_known else None
    m = overlap_metrics(pred, ref, spacing)
    size_unit = "ml" if pred.ndim == 3 else ("cm2" if spacing_known else "pixels")
    unit = unit_size if (pred.ndim == 3 or spacing_known) else 1.0
    for name, values in STRUCTURES:
        a, b = np.isin(pred, values).sum() * unit, np.isin(ref, values).sum() * unit
        m[name][f"size_{size_unit}"] = float(a)
        m[name][f"ref_size_{size_unit}"] = float(b)
        m[name]["size_error_pct"] = float(100.0 * (a - b) / b) if b else float("nan")
    m["hd95_unit"] = "mm" if spacing_known else "pixels"
    return m


def find_eval_pairs(images, masks) -> list:
    from . import data

    images = Path(images)
    if masks and Path(masks) != images:
        masks = Path(masks)
        if not images.is_dir() or not masks.is_dir():
            raise LungSegError(f"--images {images} and --masks {masks} must be folders")
        by_stem = data.masks_by_stem(masks)
        pairs = [(data._stem(p), p, by_stem[data._stem(p)]) for p in sorted(images.iterdir())
                 if p.is_file() and data._stem(p) in by_stem]
        if not pairs:
            raise LungSegError(f"no file of {images} has a mask with the same file stem in {masks}")
        return pairs
    return data.find_pairs([images])


def summarize(rows: list) -> dict:
    out = {"cases": len(rows)}
    for name, _ in STRUCTURES:
        for key in ("dice", "iou", "hd95", "size_error_pct"):
            v = np.array([r["metrics"][name][key] for r in rows], float)
            v = v[np.isfinite(v)]
            if v.size:
                out[f"{name}_{key}_mean"] = float(v.mean())
                out[f"{name}_{key}_median"] = float(np.median(v))
                worst = v.max() if key in ("hd95",) else (v.min() if key in ("dice", "iou") else v[np.argmax(abs(v))])
                out[f"{name}_{key}_worst"] = float(worst)
    return out


def opacity_mask(image_path) -> np.ndarray | None:
    """The reference opacity mask of a radiograph, ``<data>/infection/<stem>.png`` beside ``images/``
    (COVID-QU-Ex layout), or None."""
    from . import data

    path = Path(image_path).parent.parent / "infection" / f"{data._stem(Path(image_path))}.png"
    if not path.is_file():
        return None
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        return np.asarray(im.convert("L")) > 127


def summarize_groups(rows: list, table: dict) -> dict:
    """Summaries per data set and per data set / group (columns ``dataset``, ``group`` of the split CSV)."""
    keys = {}
    for r in rows:
        info = table.get(r["case"], {})
        ds, grp = info.get("dataset") or "", info.get("group") or ""
        for key in filter(None, (ds, f"{ds}/{grp}" if ds and grp else "")):
            keys.setdefault(key, []).append(r)
    out = {}
    for key, sub in sorted(keys.items()):
        s = summarize(sub)
        rec = [r["opacity_recall"] for r in sub if r.get("opacity_recall") is not None]
        if rec:
            s["opacity_recall_mean"], s["opacity_recall_worst"] = float(np.mean(rec)), float(np.min(rec))
            s["opacity_cases"] = len(rec)
        out[key] = s
    return out


def evaluate_cases(pairs, params, progress: bool = True) -> dict:
    from tqdm import tqdm

    from . import data
    from .pipeline import run_case

    rows = []
    for case, img, msk in tqdm(pairs, desc="evaluate", disable=not progress):
        t0 = time.perf_counter()
        result = run_case(img, params)
        seconds = time.perf_counter() - t0
        image = result.image
        radiograph = image.ndim == 2
        _, ref = data.read_pair(img, msk, radiograph)
        ref_arr = ref.array
        if not radiograph:  # read_pair returns canonical labels; bring them to the input grid
            from .image import from_canonical, to_canonical

            ref_arr = from_canonical(ref.array, to_canonical(image), image)
        unit = image.voxel_volume_ml if not radiograph else image.pixel_area_cm2
        m = evaluate_labels(result.labels.array, ref_arr, image.spacing, image.spacing_known, unit)
        row = {"case": case, "engine": result.engine, "model": result.model.get("name"), "seconds": round(seconds, 2),
               "metrics": m}
        if not radiograph:
            from .measure import measure_ct

            true = measure_ct(ref_arr, image.array, image.voxel_volume_ml, params.density)["structures"]["both"]
            got = result.measurements["structures"]["both"]
            row["weight_g"], row["ref_weight_g"] = got["weight_g"], true["weight_g"]
            row["metrics"]["both"]["weight_error_pct"] = 100.0 * (got["weight_g"] - true["weight_g"]) / true["weight_g"]
        if radiograph:
            opaque = opacity_mask(img)
            if opaque is not None and opaque.shape == result.labels.array.shape and opaque.any():
                row["opacity_recall"] = float((result.labels.array[opaque] > 0).mean())
        rows.append(row)
    summary = summarize(rows)
    rec = [r["opacity_recall"] for r in rows if "opacity_recall" in r]
    if rec:
        summary.update(opacity_recall_mean=float(np.mean(rec)), opacity_recall_worst=float(np.min(rec)),
                       opacity_cases=len(rec))
    return {"summary": summary, "cases": rows}


def main(argv=None) -> int:
    from .params import Parameters

    args = parse_args(argv)
    try:
        if not args.images and not args.data:
            raise LungSegError("give --images DIR [--masks DIR] or --data DIR")
        from .data import find_pairs

        pairs = find_eval_pairs(args.images, args.masks) if args.images else []
        pairs += find_pairs(args.data) if args.data else []
        table = {}
        if args.split:
            from .data import read_split_table

            table = read_split_table(args.split)
            pairs = [p for p in pairs if table.get(p[0], {}).get("split") == args.subset]
            if not pairs:
                raise LungSegError(f"no case of {args.images} is in the {args.subset!r} part of {args.split}")
        params = Parameters(engine=args.engine, arch=args.arch, weights=args.weights, device=args.device)
        report = evaluate_cases(pairs, params, progress=sys.stderr.isatty())
        if table:
            report["by_group"] = summarize_groups(report["cases"], table)
        report["command"] = "lungseg evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
        report["engine"], report["arch"] = args.engine, args.arch
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")
        s = report["summary"]
        print(f"{s['cases']} cases: Dice both {s.get('both_dice_mean', float('nan')):.4f} "
              f"(worst {s.get('both_dice_worst', float('nan')):.4f}), IoU {s.get('both_iou_mean', float('nan')):.4f}, "
              f"HD95 {s.get('both_hd95_mean', float('nan')):.2f} {rows_unit(report)}"
              + (f", opacity recall {s['opacity_recall_mean']:.4f}" if "opacity_recall_mean" in s else ""))
        for key, g in report.get("by_group", {}).items():
            print(f"  {key}: {g['cases']} cases, Dice both {g.get('both_dice_mean', float('nan')):.4f} "
                  f"(worst {g.get('both_dice_worst', float('nan')):.4f}), HD95 {g.get('both_hd95_mean', float('nan')):.2f}"
                  + (f", opacity recall {g['opacity_recall_mean']:.4f} (worst {g['opacity_recall_worst']:.4f})"
                     if "opacity_recall_mean" in g else ""))
    except LungSegError as e:
        print(f"lungseg evaluate: error: {e}", file=sys.stderr)
        return 2
    return 0


def rows_unit(report: dict) -> str:
    return report["cases"][0]["metrics"]["hd95_unit"] if report["cases"] else ""


if __name__ == "__main__":
    sys.exit(main())
