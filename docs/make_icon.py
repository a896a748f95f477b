"""Make the extension icon (LungSeg.png, LungSeg/Resources/Icons/LungSeg.png): the HU engine's right and
left lung on the bundled CIP sample CT, rendered as a shaded surface seen from the front.

    python docs/make_icon.py
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from LungSegLib.io import SEGMENTS  # noqa: E402
from LungSegLib.params import Parameters  # noqa: E402
from LungSegLib.pipeline import run_case  # noqa: E402


def shaded_front_view(labels: np.ndarray, spacing, mm_per_pixel=1.0):
    """RGBA picture of the labels seen from the front (radiological view: patient's right on the left)."""
    zoom = [s / mm_per_pixel for s in spacing[::-1]]  # numpy (z, y, x)
    rgb = None
    depth_best = None
    for value, _, _, colour, _ in SEGMENTS:
        smooth = ndimage.gaussian_filter((labels == value).astype(np.float32), 0.8)  # soften 4 mm voxel steps
        mask = ndimage.zoom(smooth, zoom, order=3) > 0.5
        front = np.where(mask.any(axis=1), mask.argmax(axis=1), np.inf)  # (z, x): first voxel from anterior
        depth = ndimage.gaussian_filter(np.where(np.isfinite(front), front, mask.shape[1]).astype(float), 2.5)
        gz, gx = np.gradient(depth)
        normal = np.stack([-gx, -gz, np.ones_like(depth)])
        normal /= np.linalg.norm(normal, axis=0)
        light = np.array([-0.4, 0.5, 0.77])
        light /= np.linalg.norm(light)
        shade = np.clip((normal * light[:, None, None]).sum(0), 0, 1) ** 1.2
        spec = shade ** 30
        layer = np.clip(shade[..., None] * 0.85 * np.array(colour) + 0.15 * np.array(colour) + 0.35 * spec[..., None], 0, 1)
        visible = np.isfinite(front)
        if rgb is None:
            rgb = np.zeros(layer.shape)
            depth_best = np.full(front.shape, np.inf)
        closer = visible & (front < depth_best)
        rgb[closer] = layer[closer]
        depth_best = np.minimum(depth_best, front)
    alpha = np.isfinite(depth_best).astype(float)
    alpha = ndimage.gaussian_filter(alpha, 0.7)
    picture = np.concatenate([rgb, alpha[..., None]], axis=-1)[::-1]  # superior at the top
    return PILImage.fromarray((picture * 255).astype(np.uint8), "RGBA")


def square_icon(picture: PILImage.Image, size=128, margin=6):
    box = picture.getbbox()
    picture = picture.crop(box)
    scale = (size - 2 * margin) / max(picture.size)
    picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                             PILImage.LANCZOS)
    icon = PILImage.new("RGBA", (size, size), (0, 0, 0, 0))
    icon.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2), picture)
    return icon


if __name__ == "__main__":
    result = run_case(REPO / "samples" / "ct-64.nrrd", Parameters(engine="hu"))
    icon = square_icon(shaded_front_view(result.labels.array, result.labels.spacing))
    for out in (REPO / "LungSeg.png", REPO / "LungSeg" / "Resources" / "Icons" / "LungSeg.png"):
        out.parent.mkdir(parents=True, exist_ok=True)
        icon.save(out)
        print(out)
