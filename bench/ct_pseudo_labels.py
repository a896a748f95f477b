"""Pseudo-labels for CTs without an expert lung mask, so training sees other scanners, the table and air
outside the body (issue 9). The label is the ``hu`` engine's aerated lung plus the ``ct3d`` voxels above
-400 HU that ``hu`` leaves out (tumour, consolidation: dense lung is lung), cleaned to the largest
component per side. Air-like voxels that only ``ct3d`` calls lung (trachea, bowel gas under the
diaphragm, seen on the pictures) are not added. Writes ``<case>_ct.nii.gz`` + ``<case>_lungs.nii.gz``
(the training layout) and prints the agreement between the two engines. Look at the masks before
training on them: these labels are pseudo, not expert, and the model cards say so.

Example (from the repository root):
  python bench/ct_pseudo_labels.py --out .devdata/ct_extra \\
      a0001=../shared/data/ct/ctanalyser-tcia-lung-pet-ct-dx-A0001/Chest_CT \\
      ciptestinput=../shared/data/ct/cip-copdgene-ct64/TestInput.nrrd
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DENSE_ADD_HU = -400.0


def pseudo_labels(image) -> tuple:
    """(labels on the input grid, info) for one CT :class:`Image`."""
    from LungSegLib.params import Parameters
    from LungSegLib.pipeline import segment_image
    from LungSegLib.postprocess import clean_labels

    hu = segment_image(image, Parameters(engine="hu", device="cpu")).labels.array
    c3 = segment_image(image, Parameters(engine="ct3d", device="cpu")).labels.array
    add = (c3 > 0) & (hu == 0) & (image.array > DENSE_ADD_HU)
    labels = clean_labels(np.where(hu > 0, hu, np.where(add, c3, 0)).astype(np.uint8))
    both = 2.0 * ((hu > 0) & (c3 > 0)).sum() / max(1, (hu > 0).sum() + (c3 > 0).sum())
    return labels, {"dice_hu_ct3d": float(both), "dense_added_ml": float(add.sum() * image.voxel_volume_ml),
                    "volume_ml": float((labels > 0).sum() * image.voxel_volume_ml)}


def main(argv=None) -> int:
    import SimpleITK as sitk

    from LungSegLib.io import read_image

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (training layout)")
    p.add_argument("cases", nargs="+", help="NAME=PATH (a volume file or a DICOM series folder)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in args.cases:
        name, _, path = spec.partition("=")
        image = read_image(path)
        labels, info = pseudo_labels(image)
        sitk.WriteImage(image.to_sitk(), str(out / f"{name}_ct.nii.gz"))
        sitk.WriteImage(image.with_array(labels).to_sitk(), str(out / f"{name}_lungs.nii.gz"))
        print(f"{name}: hu/ct3d Dice {info['dice_hu_ct3d']:.4f}, dense lung added {info['dense_added_ml']:.0f} mL, "
              f"lungs {info['volume_ml']:.0f} mL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
