"""Training / evaluation data: discovery of image-mask pairs, patient-level splits, sided labels and
compact model-grid caches (the exact arrays the networks see at inference).

Accepted folder layouts (``--data DIR``):

1. ``DIR/images/<name>`` + ``DIR/masks/<name>`` paired by file stem (``a.jpg`` image + ``a.png`` mask,
   or identical names; radiographs as PNG/JPG/TIFF, or CT volumes). A lossless mask format (PNG) is
   advised: JPEG masks blur at the border. Masks: 0 = background, any other value = lung; values 1 and 2 are kept as
   right/left when both are present, otherwise sides are derived (see below).
2. ``DIR/<case>_ct.nii.gz`` + ``DIR/<case>_lungs.nii.gz`` (also ``.nrrd``/``.mha``) — the LCTSC layout.
   Use this for your own CT: one ``<case>_ct`` and one ``<case>_lungs`` file per patient, any grid;
   masks are resampled onto the image by physical coordinates when the grids differ.

Sides: radiographs (PA view) — the patient's right lung is on the image's left (smaller column) -> 1;
CT — the volume is brought to canonical LPS order and split by :func:`postprocess.split_sides`
(right = smaller x index). A patient id (for splits) is the case name with a trailing ``_<digits>``
view suffix removed (``MCUCXR_0001_0`` -> ``MCUCXR_0001``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from scipy import ndimage

from .errors import LungSegError

PICTURES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
VOLUMES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
RIGHT, LEFT = 1, 2


def _stem(path: Path) -> str:
    name = path.name
    for s in VOLUMES + PICTURES:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return path.stem


def patient_id(case: str) -> str:
    return re.sub(r"_\d+$", "", case)


def masks_by_stem(folder: Path) -> dict:
    """``{stem: mask path}``: an image and its mask pair by file stem, so ``case.jpg`` (lossy image) finds
    ``case.png`` (lossless mask). Two masks with one stem (``a.png`` and ``a.tif``) are refused."""
    out = {}
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and not p.name.startswith("."):
            stem = _stem(p)
            if stem in out:
                raise LungSegError(f"masks {out[stem].name} and {p.name} in {folder} share the stem {stem!r}; "
                                   "keep one mask per image")
            out[stem] = p
    return out


def find_pairs(folders) -> list:
    """``[(case, image_path, mask_path), ...]`` from one or more data folders (layouts in the module doc)."""
    pairs = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise LungSegError(f"data folder {folder} does not exist")
        found = []
        if (folder / "images").is_dir() and (folder / "masks").is_dir():
            masks = masks_by_stem(folder / "masks")
            for img in sorted((folder / "images").iterdir()):
                if img.is_file() and _stem(img) in masks:
                    found.append((_stem(img), img, masks[_stem(img)]))
        else:
            for img in sorted(folder.iterdir()):
                m = re.match(r"(.+)_ct(\.nii\.gz|\.nii|\.nrrd|\.mha|\.mhd)$", img.name)
                if m:
                    mask = folder / f"{m.group(1)}_lungs{m.group(2)}"
                    if mask.is_file():
                        found.append((m.group(1), img, mask))
        if not found:
            raise LungSegError(
                f"no image/mask pairs in {folder}: expected images/ + masks/ with the same file stems, "
                f"or <case>_ct.nii.gz + <case>_lungs.nii.gz files")
        pairs.extend(found)
    names = [c for c, _, _ in pairs]
    if len(set(names)) != len(names):
        raise LungSegError("duplicate case names across the data folders; rename one set")
    return pairs


# ------------------------------------------------------------------------------------------ splits
def make_split(cases, fractions=(0.7, 0.15, 0.15), seed=2024, groups=None) -> dict:
    """Patient-level split: case -> 'train' | 'val' | 'test'. ``groups`` (e.g. the data set of each
    case) are split separately so every part has the same mix."""
    rng = np.random.default_rng(seed)
    groups = groups or {c: "all" for c in cases}
    out = {}
    for g in sorted(set(groups.values())):
        patients = sorted({patient_id(c) for c in cases if groups[c] == g})
        rng.shuffle(patients)
        n = len(patients)
        n_val = int(round(fractions[1] * n))
        n_test = int(round(fractions[2] * n)) if len(fractions) > 2 else 0
        part = {p: "val" for p in patients[:n_val]}
        part.update({p: "test" for p in patients[n_val:n_val + n_test]})
        part.update({p: "train" for p in patients[n_val + n_test:]})
        out.update({c: part[patient_id(c)] for c in cases if groups[c] == g})
    return out


def write_split(path, split: dict, extra: dict | None = None) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "split"] + list((extra or {}).keys()))
        for case in sorted(split):
            w.writerow([case, split[case]] + [col[case] for col in (extra or {}).values()])


def read_split_table(path) -> dict:
    """``{case: row}`` of a split CSV with every column (``split`` and e.g. ``dataset``, ``group``)."""
    path = Path(path)
    if not path.is_file():
        raise LungSegError(f"split file {path} not found")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "case" not in rows[0] or "split" not in rows[0]:
        raise LungSegError(f"split file {path} needs the columns case,split")
    return {r["case"]: r for r in rows}


def read_split(path) -> dict:
    return {case: row["split"] for case, row in read_split_table(path).items()}


# ------------------------------------------------------------------------------------------- sides
def sides_2d_radiograph(mask: np.ndarray) -> np.ndarray:
    """Merged radiograph lung mask -> 1 (patient's right = image left) / 2 (image right)."""
    mask = mask > 0
    labels = np.zeros(mask.shape, np.uint8)
    lab, n = ndimage.label(mask)
    if n == 0:
        return labels
    sizes = np.bincount(lab.ravel())[1:]
    cols = np.array([c[1] for c in ndimage.center_of_mass(mask, lab, range(1, n + 1))])
    big = np.argsort(sizes)[::-1][:2]
    mid = cols[big].mean() if len(big) == 2 else mask.shape[1] / 2.0
    for i in range(n):
        labels[lab == i + 1] = RIGHT if cols[i] < mid else LEFT
    return labels


def sided_labels(mask: np.ndarray, radiograph: bool) -> np.ndarray:
    """Keep 1/2 labels when both are present; otherwise derive sides from anatomy (canonical grid)."""
    values = set(np.unique(mask).tolist()) - {0}
    if values == {1, 2}:
        return mask.astype(np.uint8)
    if radiograph:
        return sides_2d_radiograph(mask)
    from .postprocess import split_sides

    return split_sides(mask > 0)


# --------------------------------------------------------------------------------------- reading
def read_pair(image_path, mask_path, radiograph: bool):
    """(image, labels): both :class:`Image` on the image's grid; CT canonical (LPS), labels sided."""
    import SimpleITK as sitk

    from .image import CT, CXR, to_canonical
    from .io import read_image

    image = read_image(image_path, CXR if radiograph else CT)
    mask = read_image(mask_path, CXR if radiograph else CT)
    if radiograph:
        if mask.array.shape != image.array.shape:
            raise LungSegError(f"mask {mask_path} shape {mask.array.shape} differs from image {image.array.shape}")
        return image, image.with_array(sided_labels(mask.array, True))
    m = mask.to_sitk()
    ref = image.to_sitk()
    if (m.GetSize() != ref.GetSize() or not np.allclose(m.GetOrigin(), ref.GetOrigin(), atol=1e-3)
            or not np.allclose(m.GetSpacing(), ref.GetSpacing(), atol=1e-4)
            or not np.allclose(m.GetDirection(), ref.GetDirection(), atol=1e-4)):
        m = sitk.Resample(m, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, m.GetPixelID())
    canon = to_canonical(image)
    mask_c = to_canonical(image.with_array(sitk.GetArrayFromImage(m).astype(np.uint8)))
    return canon, canon.with_array(sided_labels(mask_c.array, False))


# ------------------------------------------------------------------------------------ model grids
def to_uint8(x: np.ndarray) -> np.ndarray:
    """Model input in [0, 1] -> uint8 (the cache format; 1/255 steps, 6.4 HU for CT)."""
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def labels_to_slices(labels: np.ndarray, box, size) -> np.ndarray:
    """(Z, Y, X) labels -> (Z, size, size) on the model's slice grid (mirror of slices_to_model)."""
    from .preprocess import resize

    crop = labels[:, box.y0:box.y1, box.x0:box.x1]
    py, px = box.pads
    sq = np.zeros((crop.shape[0], box.side, box.side), np.uint8)
    sq[:, py:py + crop.shape[1], px:px + crop.shape[2]] = crop
    if box.side != size[0]:
        sq = resize(sq, size, mode="nearest")
    return sq.astype(np.uint8)


def prepare_case(task: str, card_input: dict, image_path, mask_path):
    """One case on the model grid, exactly as inference prepares it: (inputs uint8, labels uint8).

    cxr: (1, s, s); ct2d: (Z, s, s) slices; ct3d: (Z, Y, X) volume at the card's spacing."""
    from . import preprocess as pp

    if task == "cxr":
        image, labels = read_pair(image_path, mask_path, True)
        x = pp.radiograph_to_model(image.array, card_input["size"], card_input["percentiles"])[0]
        y = pp.resize(labels.array[None], card_input["size"], mode="nearest")
        return to_uint8(x), y.astype(np.uint8)
    image, labels = read_pair(image_path, mask_path, False)
    if task == "ct2d":
        box = pp.body_box(image.array)
        x = pp.slices_to_model(image.array, box, card_input["size"], card_input["hu_range"])[:, 0]
        return to_uint8(x), labels_to_slices(labels.array, box, card_input["size"])
    if task == "ct3d":
        import SimpleITK as sitk

        spacing = card_input["spacing_mm"]
        low = pp.resample_volume(image, spacing)
        low_lab = pp.resample_volume(labels, spacing, "nearest", default=0)
        x = pp.scale_hu(sitk.GetArrayFromImage(low), card_input["hu_range"])
        return to_uint8(x), sitk.GetArrayFromImage(low_lab).astype(np.uint8)
    raise LungSegError(f"unknown task {task!r}")


def build_cache(task: str, card_input: dict, pairs, split: dict, path, progress=True) -> dict:
    """Prepare every split case and save a compressed npz: per case ``x_<i>``, ``y_<i>`` plus
    ``cases`` and ``splits``. Returns the loaded-form dict (see :func:`load_cache`)."""
    from tqdm import tqdm

    arrays, cases, parts = {}, [], []
    use = [(c, i, m) for c, i, m in pairs if split.get(c) in ("train", "val", "test")]
    if not use:
        raise LungSegError("no case of the data folders is listed in the split")
    for k, (case, img, msk) in enumerate(tqdm(use, desc=f"preparing {task}", disable=not progress)):
        x, y = prepare_case(task, card_input, img, msk)
        arrays[f"x_{k}"], arrays[f"y_{k}"] = x, y
        cases.append(case)
        parts.append(split[case])
    np.savez_compressed(path, cases=np.array(cases), splits=np.array(parts), task=np.array(task), **arrays)
    return load_cache(path)


def load_cache(path) -> dict:
    """{'task', 'cases': [...], 'splits': [...], 'x': [uint8 arrays], 'y': [uint8 arrays]}; needs only numpy."""
    path = Path(path)
    if not path.is_file():
        raise LungSegError(f"cache file {path} not found")
    with np.load(path) as z:
        n = len(z["cases"])
        return {"task": str(z["task"]), "cases": [str(c) for c in z["cases"]],
                "splits": [str(s) for s in z["splits"]],
                "x": [z[f"x_{k}"] for k in range(n)], "y": [z[f"y_{k}"] for k in range(n)]}
