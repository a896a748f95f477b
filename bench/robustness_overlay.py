"""Picture of one robustness case: the painted CT with the true lung, the engine's lung and the painted
region outlined, on the axial, coronal and sagittal planes holding the most painted voxels. By default
the worst network case (lowest Dice at 25 % dense) of a ``bench/dense_lung_stress.py`` JSON result;
the same seed repaints exactly the same pattern.

  python bench/robustness_overlay.py --result bench/results/robustness_before.json \\
      --data ../shared/data/ct/lctsc-cambridge-dis-12 --png worst.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LungSegLib.data import find_pairs, read_pair  # noqa: E402
from LungSegLib.pathology import simulate  # noqa: E402


def worst_case(result: dict, fraction: str = "0.25") -> tuple:
    """(case, family, fraction, engine) with the lowest Dice among the network engines (hu if alone)."""
    engines = [e for e in result["engines"] if e != "hu"] or result["engines"]
    rows = [(r["engines"][e]["dice"], case, fam, fraction, e) for case, c in result["cases"].items()
            for fam, by in c["painted"].items() for key, r in by.items() if key == fraction for e in engines]
    return min(rows)[1:]


def render(case, family, fraction, engine, data, result, path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from LungSegLib.params import Parameters
    from LungSegLib.pipeline import segment_image

    bench = _bench()
    pairs = {c: (i, m) for c, i, m in find_pairs(data)}
    index = list(result["cases"]).index(case)
    image, labels = read_pair(*pairs[case], radiograph=False)
    spacing = tuple(float(s) for s in image.spacing[::-1])
    rng = np.random.default_rng(bench.case_seed(result.get("seed", 0), index, family, float(fraction)))
    hu, region = simulate(family, image.array, labels.array, float(fraction), rng, spacing)
    hu = np.rint(hu).astype(image.array.dtype)
    pred = segment_image(image.with_array(hu), Parameters(engine=engine)).labels.array > 0
    lungs = labels.array > 0
    zc, yc, xc = (int(np.argmax(np.bincount(c))) for c in np.nonzero(region))  # planes with most region
    views = [("axial", np.s_[zc], 1.0, False), ("coronal", np.s_[:, yc], spacing[0] / spacing[2], True),
             ("sagittal", np.s_[:, :, xc], spacing[0] / spacing[1], True)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.5))
    for ax, (name, sl, aspect, flip) in zip(axes, views):
        pick = (lambda a: a[sl][::-1]) if flip else (lambda a: a[sl])
        ax.imshow(pick(hu), cmap="gray", vmin=-1000, vmax=200, aspect=aspect)
        for mask, colour in ((lungs, "lime"), (pred, "red"), (region, "cyan")):
            if pick(mask).any():
                ax.contour(pick(mask), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(name)
        ax.axis("off")
    dice = 2 * (pred & lungs).sum() / (pred.sum() + lungs.sum())
    recall = (pred & region).sum() / region.sum()
    fig.suptitle(f"{case}, {family} {float(fraction):.0%} dense, engine {engine}: Dice {dice:.3f}, dense recall "
                 f"{recall:.2f}   (green true lung, red {engine} lung, cyan painted region)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return {"case": case, "family": family, "fraction": float(fraction), "engine": engine,
            "dice": float(dice), "dense_region_recall": float(recall)}


def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dense_lung_stress", Path(__file__).with_name("dense_lung_stress.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--result", required=True, help="JSON written by bench/dense_lung_stress.py")
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--case", nargs=4, metavar=("CASE", "FAMILY", "FRACTION", "ENGINE"),
                   help="this case instead of the worst one (FRACTION as in the JSON, e.g. 0.25)")
    p.add_argument("--png", required=True)
    args = p.parse_args(argv)
    result = json.loads(Path(args.result).read_text())
    chosen = args.case or worst_case(result)
    print(render(*chosen, args.data, result, args.png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
