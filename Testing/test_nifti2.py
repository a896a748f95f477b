"""NIfTI-2 volumes (SimpleITK and Slicer's storage node cannot open them) are read through nibabel and then
checked and measured exactly as the same volume stored as NIfTI-1: voxels, geometry, shear, bad voxel sizes."""

import nibabel as nib
import numpy as np
import pytest

from badinputs import HU, phantom, raises
from conftest import SAMPLES
from LungSegLib.io import read_image
from LungSegLib.nifti import is_nifti2, nifti_header
from LungSegLib.pipeline import run_case

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _save(klass, path, arr_zyx, affine_ras, scale=None):
    img = klass(np.ascontiguousarray(arr_zyx.transpose(2, 1, 0)), affine_ras)  # nibabel is (x, y, z)
    img.header.set_sform(affine_ras, code=1)
    img.header.set_qform(affine_ras, code=1)
    if scale:
        img.header.set_slope_inter(*scale)
    nib.save(img, str(path))
    return path


def _affine_of(image):
    """RAS affine of an Image (LPS direction, spacing, origin)."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(image.direction, float).reshape(3, 3) @ np.diag(image.spacing)
    affine[:3, 3] = image.origin
    return LPS_TO_RAS @ affine


def test_a_real_ct_as_nifti2_reads_and_measures_like_nifti1(tmp_path):
    ct = read_image(SAMPLES / "ct-64.nrrd")
    affine = _affine_of(ct)
    one = _save(nib.Nifti1Image, tmp_path / "ct1.nii.gz", ct.array.astype(np.int16), affine)
    two = _save(nib.Nifti2Image, tmp_path / "ct2.nii.gz", ct.array.astype(np.int16), affine)
    assert nifti_header(two)["version"] == 2 and is_nifti2(two) and not is_nifti2(one)
    a, b = read_image(one), read_image(two)
    assert np.array_equal(a.array, b.array) and np.array_equal(b.array, ct.array.astype(np.int16))
    for field in ("spacing", "direction", "origin"):
        assert np.allclose(getattr(a, field), getattr(b, field), atol=1e-4), field
    ml = [run_case(p, HU).measurements["structures"]["both"]["volume_ml"] for p in (one, two)]
    assert ml[0] > 1000 and ml[1] == pytest.approx(ml[0], rel=1e-6)


def test_nifti2_scaling_shear_and_bad_voxel_sizes_get_the_nifti1_answers(tmp_path):
    image, truth, volume_ml = phantom()
    affine = np.diag([4.0, 4.0, 6.0, 1.0])
    stored = ((image.array + 1024) / 2).astype(np.int16)  # scl_slope 2, scl_inter -1024 gives HU back
    p = _save(nib.Nifti2Image, tmp_path / "scaled.nii", stored, affine, scale=(2.0, -1024.0))
    assert np.allclose(read_image(p).array, stored * 2.0 - 1024)

    sheared = affine.copy()
    sheared[1, 2] = 6.0 * np.tan(np.radians(20))  # k steps lean along y: voxel volume unchanged
    result = run_case(_save(nib.Nifti2Image, tmp_path / "sheared.nii.gz", image.array, sheared), HU)
    assert any("sheared by 20.0 degrees" in w for w in result.warnings)
    for side in ("right", "left"):
        assert result.measurements["structures"][side]["volume_ml"] == pytest.approx(volume_ml, rel=0.08)

    p = _save(nib.Nifti2Image, tmp_path / "zero.nii", image.array, affine)
    raw = bytearray(p.read_bytes())
    header = nib.Nifti2Header(bytes(raw[:540]), check=False)
    header["pixdim"][1:4] = 0.0  # nibabel refuses to write this: edit the unchecked header
    header["qform_code"], header["sform_code"] = 0, 0
    p.write_bytes(header.binaryblock + bytes(raw[540:]))
    raises(lambda: read_image(p), "(0.0, 0.0, 0.0)", "positive")


def test_slicer_loads_a_nifti2_volume_through_lungseglib(tmp_path):
    pytest.importorskip("slicer", reason="slicer-core is not installed")
    from LungSegLib import mrml
    from LungSegLib.mrml_io import load_volume

    ct = read_image(SAMPLES / "ct-64.nrrd")
    p = _save(nib.Nifti2Image, tmp_path / "ct.nii.gz", ct.array.astype(np.int16), _affine_of(ct))
    node = load_volume(p, mrml.new_scene())
    loaded = mrml.volume_node_to_image(node)
    assert np.array_equal(loaded.array, ct.array.astype(np.int16))
    assert np.allclose(loaded.spacing, ct.spacing, atol=1e-4) and np.allclose(loaded.origin, ct.origin, atol=1e-3)
