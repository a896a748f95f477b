"""Bad-input catalogue of issue 5, groups 7-12 (groups 1-6: test_bad_inputs.py)."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from badinputs import HU, copy_dicom, dx_dicom, gzip_bomb, nifti_declaring, phantom, png_declaring, raises, \
    write_phantom
from conftest import SAMPLES, shared_path
from LungSegLib.cli import main
from LungSegLib.image import Image
from LungSegLib.io import read_image, sanitize_name
from LungSegLib.limits import MAX_VOXELS, check_volume_header
from LungSegLib.params import Parameters
from LungSegLib.pipeline import run_case, segment_image
from LungSegLib.qc import qc_cxr

CXR_PNG = SAMPLES / "montgomery_MCUCXR_0001_0.png"


# 7. geometry: slice thickness, pixel shape, size, truncated field of view ---------------------------------
@pytest.mark.parametrize("shape,spacing", [((150, 40, 48), (4.0, 4.0, 0.5)),   # very thin slices
                                           ((16, 40, 48), (4.0, 4.0, 10.0)),   # very thick slices
                                           ((24, 40, 96), (2.0, 4.0, 6.0))])   # non-square pixels
def test_thin_thick_slices_and_non_square_pixels_measure_the_analytic_volume(shape, spacing):
    axes = (30.0, 40.0, 30.0) if spacing[2] == 0.5 else (35.0, 45.0, 60.0)
    image, _, volume_ml = phantom(shape=shape, spacing=spacing, semi_axes_mm=axes)
    result = segment_image(image, HU)
    for side in ("right", "left"):
        assert result.measurements["structures"][side]["volume_ml"] == pytest.approx(volume_ml, rel=0.12)
    if spacing[2] == 10.0:
        assert any("thick slices (10.0 mm)" in w for w in result.warnings)


def test_tiny_32_cubed_volume_is_segmented_with_a_warning():
    image, _, volume_ml = phantom(shape=(32, 32, 32), spacing=(6.0, 6.0, 6.0))
    result = segment_image(image, HU)
    assert result.measurements["structures"]["both"]["volume_ml"] == pytest.approx(2 * volume_ml, rel=0.15)
    assert any("small volume" in w for w in result.warnings)


def test_large_512x512x1000_volume_passes_the_header_check_without_allocating(tmp_path):
    p = tmp_path / "large.nrrd"  # header only: the check never reads the (absent) voxels
    p.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 512 512 1000\nendian: little\nencoding: raw\n\n")
    assert check_volume_header(p)["size"] == (512, 512, 1000)


def test_field_of_view_cutting_the_lungs_is_flagged_but_measured():
    image, _, _ = phantom(shape=(40, 40, 48), spacing=(4.0, 4.0, 4.0))
    cut = Image(np.ascontiguousarray(image.array[8:32]), spacing=image.spacing)  # lungs leave top and bottom
    result = segment_image(cut, HU)
    assert "mask_touches_border_possibly_truncated" in result.qc["flags"]
    assert result.measurements["structures"]["both"]["volume_ml"] > 300


# 8. radiographs --------------------------------------------------------------------------------------
def _grey():
    from PIL import Image
    return np.asarray(Image.open(CXR_PNG).convert("L"), dtype=np.uint16)


def test_monochrome1_dicom_is_inverted_to_match_monochrome2(tmp_path):
    g = _grey() * 16
    m2 = read_image(dx_dicom(tmp_path / "m2.dcm", g))
    m1 = read_image(dx_dicom(tmp_path / "m1.dcm", 4095 - g, photometric="MONOCHROME1"))
    assert m1.modality == m2.modality == "CXR" and m1.spacing_known
    assert np.corrcoef(m1.array.ravel(), m2.array.ravel())[0, 1] > 0.999


def test_16_bit_and_rgb_pictures_are_read_as_grey(tmp_path):
    from PIL import Image
    g = _grey()
    p16 = tmp_path / "x16.png"
    Image.fromarray(g * 256).save(p16)
    img16 = read_image(p16)
    assert img16.meta["bits"] == 16 and img16.array.max() > 255
    prgb = tmp_path / "rgb.png"
    Image.fromarray(np.repeat(g.astype(np.uint8)[..., None], 3, axis=-1)).save(prgb)
    rgb = read_image(prgb)
    assert rgb.array.ndim == 2 and np.allclose(rgb.array, g, atol=1)


def test_lateral_and_non_chest_radiographs_are_flagged(tmp_path, random_weights):
    lateral = read_image(dx_dicom(tmp_path / "lat.dcm", _grey() * 16, view="LL"))
    result = segment_image(lateral, Parameters(engine="cxr", weights=str(random_weights("cxr"))))
    assert "lateral_view" in result.qc["flags"] and any("lateral view" in w for w in result.warnings)
    one = np.zeros((100, 100), np.uint8)
    one[30:70, 20:45] = 1  # one lung-like blob only (lateral view, or not a chest)
    m = {"structures": {"both": {"pixel_count": int(one.sum())}, "right": {"pixel_count": int(one.sum())},
                        "left": {"pixel_count": 0}}}
    flags = qc_cxr(one, m)["flags"]
    assert "not_two_lungs_possibly_lateral_or_non_chest" in flags and "suspected_non_chest_input" in flags
    many = np.zeros((100, 100), np.uint8)
    many[10:40, 10:40], many[10:40, 60:90], many[60:90, 30:60] = 1, 2, 1
    m = {"structures": {"both": {"pixel_count": 2700}, "right": {"pixel_count": 1800}, "left": {"pixel_count": 900}}}
    assert "more_than_two_large_components" in qc_cxr(many, m)["flags"]


def test_huge_radiograph_is_downscaled_before_inference(tmp_path, random_weights):
    from PIL import Image
    big = tmp_path / "big.png"
    Image.fromarray(np.asarray(Image.open(CXR_PNG).convert("L").resize((8000, 8000)))).save(big, compress_level=1)
    image = read_image(big)
    assert max(image.array.shape) <= 4096 and image.meta["downscale_factor"] == 2
    result = segment_image(image, Parameters(engine="cxr", weights=str(random_weights("cxr"))))
    assert result.labels.array.shape == (4000, 4000)
    assert any("downscaled by 2" in w for w in result.warnings)
    from LungSegLib.radiograph import labels_at_input_size
    written = labels_at_input_size(result).array   # lungs.png keeps the input's width and height
    assert written.shape == (8000, 8000) and np.array_equal(written[::2, ::2], result.labels.array)


# 9. no lung found ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["phantom_without_lungs", "abdomen_with_bowel_gas"])
def test_no_lung_found_gives_zero_measurements_a_flag_and_exit_0(tmp_path, kind):
    image, _, _ = phantom(lung_hu=40.0)
    arr = image.array.copy()
    if kind == "abdomen_with_bowel_gas":
        arr[10:13, 18:22, 20:24] = -900  # a few mL of gas, not lungs
    p = tmp_path / f"{kind}.nrrd"
    sitk.WriteImage(image.with_array(arr).to_sitk(), str(p))
    out = tmp_path / "out"
    assert main(["segment", str(p), "-o", str(out), "--engine", "hu", "--quiet"]) == 0
    report = json.loads((out / kind / "measurements.json").read_text())
    assert report["structures"]["both"]["volume_ml"] == 0 and report["structures"]["both"]["weight_g"] == 0
    assert {"no_lung_found", "suspected_non_chest_input"} <= set(report["qc"]["flags"])
    assert (out / kind / "lungs.nii.gz").exists()


def test_more_than_two_large_components_flag():
    image, _, _ = phantom(shape=(48, 48, 56), spacing=(4.0, 4.0, 4.0))
    arr = image.array.copy()
    arr[41:47, 18:30, 22:34] = -800  # a third large air body (about 55 mL) beyond the lungs
    result = segment_image(image.with_array(arr), HU)
    assert "more_than_two_large_components" in result.qc["flags"]
    assert "more_than_two_large_components" not in segment_image(image, HU).qc["flags"]


# 10. hostile names ----------------------------------------------------------------------------------------
def test_sanitize_name_handles_hostile_strings():
    assert sanitize_name("../../etc/passwd") == "etc_passwd"
    assert sanitize_name("..") == "case" and sanitize_name("") == "case"
    assert sanitize_name("a\x00b\x1b[31mc\nd") == "a_b_31mc_d"
    assert len(sanitize_name("x" * 300)) == 100
    assert sanitize_name("measurements.csv") == "measurements.csv_case"


def test_hostile_file_names_and_dicom_texts_never_write_outside_outdir(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = ["..nrrd", "...nii.gz", "a\x07\x1b[2Jb.nrrd", "x" * 240 + ".nrrd", " ; rm -rf ~ .nrrd",
             "measurements.csv.nrrd"]
    for n in names:
        write_phantom(inputs / n)

    def hostile(ds, i):
        ds.PatientName = "../../../evil\x07"
        ds.SeriesDescription = ("a/b\\..\\c\x1b" * 30)[:64]
    copy_dicom(shared_path("ct", "cip-copdgene-ct64", "ct-64Dicom"), inputs / "..dicom..", edit=hostile)
    out = tmp_path / "work" / "out"
    before = {p for p in tmp_path.rglob("*")}
    args = [str(p) for p in sorted(inputs.iterdir())]  # given one by one: hidden names are not skipped
    assert main(["segment", *args, "-o", str(out), "--engine", "hu", "--quiet"]) == 0
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p == out.parent or out in p.parents or p == out for p in created)
    dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(dirs) == len(names) + 1
    for d in dirs:
        assert d == sanitize_name(d) and not d.startswith(".") and len(d) <= 100
    assert "measurements.csv_case" in dirs and (out / "measurements.csv").is_file()


# 11. resource bombs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["nrrd", "mha", "nii", "nii.gz"])
def test_header_claiming_1e12_voxels_is_refused_before_allocating(tmp_path, fmt):
    p = tmp_path / f"bomb.{fmt}"
    if fmt == "nrrd":
        p.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 10000 10000 10000\nendian: little\n"
                      b"encoding: raw\n\n" + bytes(64))
    elif fmt == "mha":
        p.write_text("ObjectType = Image\nNDims = 3\nDimSize = 10000 10000 10000\nElementType = MET_SHORT\n"
                     "ElementDataFile = LOCAL\n")
    else:
        nifti_declaring(p, (10000, 10000, 10000), gz=fmt.endswith("gz"))
    t = time.perf_counter()
    raises(lambda: read_image(p), str(p), "10000x10000x10000", "1e+12", f"{MAX_VOXELS:.3g}", "before reading")
    assert time.perf_counter() - t < 2


def test_gzip_bomb_nifti(tmp_path):
    small = tmp_path / "small.nii"
    image, _, _ = phantom()
    sitk.WriteImage(image.to_sitk(), str(small))
    bomb = gzip_bomb(tmp_path / "bomb.nii.gz", small.read_bytes(), trailing_mb=64)  # 64 MB of zeros after
    t = time.perf_counter()
    got = read_image(bomb)  # only the bytes the header asks for are decompressed
    assert got.array.shape == image.array.shape and time.perf_counter() - t < 2
    claims = nifti_declaring(tmp_path / "claims.nii.gz", (4000, 4000, 2000))
    raises(lambda: read_image(claims), "4000x4000x2000", "limit", "before reading")


def test_png_declaring_a_huge_size_is_refused_before_decoding(tmp_path):
    p = png_declaring(tmp_path / "huge.png", 100000, 100000)
    raises(lambda: read_image(p), str(p), "1e+10 pixels", "limit", "before decoding")


def test_dicom_header_claiming_a_huge_image_is_refused(tmp_path):
    def huge(ds, i):
        ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 100
    folder = copy_dicom(shared_path("ct", "cip-copdgene-ct64", "ct-64Dicom"), tmp_path / "huge", edit=huge, files=[0])
    raises(lambda: read_image(next(folder.iterdir())), "65535x65535x100", "limit")


# 12. weights ----------------------------------------------------------------------------------------------
def test_missing_corrupted_and_wrong_architecture_weights_name_the_model(tmp_path, random_weights):
    image = read_image(SAMPLES / "ct-64.nrrd")
    missing = tmp_path / "none.pt"
    raises(lambda: segment_image(image, Parameters(engine="ct2d", weights=str(missing))), "ct2d_unet", str(missing),
           "not found")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(Path(random_weights("ct2d")).read_bytes()[:5000])
    raises(lambda: segment_image(image, Parameters(engine="ct2d", weights=str(corrupt))), "ct2d_unet",
           str(corrupt), "cannot be loaded", "expected a PyTorch state dict")
    raises(lambda: segment_image(image, Parameters(engine="ct2d", arch="resunet",
                                                   weights=str(random_weights("ct2d", "unet")))),
           "does not fit model ct2d_resunet")


class _Payload:
    marker = ""

    def __reduce__(self):
        return (os.makedirs, (self.marker,))  # unpickling would create the marker folder


def test_pickle_payload_in_a_weights_file_is_not_executed(tmp_path):
    import torch
    marker = tmp_path / "pwned"
    _Payload.marker = str(marker)
    evil = tmp_path / "evil.pt"
    torch.save({"conv.weight": torch.zeros(1), "x": _Payload()}, evil)
    raises(lambda: segment_image(read_image(SAMPLES / "ct-64.nrrd"),
                                 Parameters(engine="ct2d", weights=str(evil))), "ct2d_unet", str(evil))
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # proof that the payload is live: plain unpickling runs it
    assert marker.exists()
    os.rmdir(marker)
