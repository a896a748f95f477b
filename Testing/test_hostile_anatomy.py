"""Issue 12: orientation that disagrees with the anatomy (mirrored right/left) is flagged; radiographs
honour EXIF orientation, say when frames are dropped, and flag one lung field cut into right and left."""

import numpy as np
import pytest
from PIL import Image as PILImage

from badinputs import HU, dx_dicom, phantom
from conftest import SAMPLES, shared_path
from LungSegLib.image import to_canonical
from LungSegLib.io import read_image
from LungSegLib.laterality import heart_offset, orientation_flags
from LungSegLib.postprocess import split_sides
from LungSegLib.qc import one_field_split, qc_cxr
from LungSegLib.pipeline import segment_image

CXR_PNG = SAMPLES / "montgomery_MCUCXR_0001_0.png"
FLAG = "laterality_implausible_heart_on_right"


def test_real_chest_ct_passes_and_its_mirror_image_is_flagged():
    ct = shared_path("ct", "lctsc-cambridge-dis-12", "lctsc002_ct.nii.gz")
    lungs = to_canonical(read_image(str(ct).replace("_ct", "_lungs"))).array > 0
    labels = split_sides(lungs)
    flags, details = orientation_flags(labels)
    assert flags == [] and details["heart_offset"] > 0.1 and details["right_left_ratio"] > 1.1
    mirrored = split_sides(np.ascontiguousarray(lungs[:, :, ::-1]))  # pixels mirrored, header unchanged
    flags, details = orientation_flags(mirrored)
    assert flags == [FLAG] and details["heart_offset"] < -0.1


def _phantom_with_heart(mirror=False):
    """Phantom whose heart (soft tissue) takes the anterior-inferior-medial part of the left lung."""
    image, _, _ = phantom(shape=(40, 48, 56), spacing=(3.0, 3.0, 4.0), semi_axes_mm=(30.0, 40.0, 60.0))
    z, y, x = np.ogrid[:40, :48, :56]
    heart = ((x - 33) / 7.0) ** 2 + ((y - 16) / 9.0) ** 2 + ((z - 12) / 9.0) ** 2 <= 1.0
    arr = image.array.copy()
    arr[heart] = 40
    return image.with_array(np.ascontiguousarray(arr[:, :, ::-1]) if mirror else arr)


def test_pipeline_flags_a_mirrored_chest_and_reports_the_signs():
    normal = segment_image(_phantom_with_heart(), HU)
    assert FLAG not in normal.qc["flags"] and normal.qc["orientation"]["heart_offset"] > 0.05
    mirrored = segment_image(_phantom_with_heart(mirror=True), HU)
    assert FLAG in mirrored.qc["flags"] and mirrored.qc["orientation"]["heart_offset"] < -0.05


def test_symmetric_phantom_has_no_laterality_flag():
    image, truth, _ = phantom()
    assert heart_offset(to_canonical(image.with_array(truth)).array) == pytest.approx(0.0, abs=0.05)
    assert segment_image(image, HU).qc["flags"].count(FLAG) == 0


# ------------------------------------------------------------------------------------------ radiographs
@pytest.mark.parametrize("orientation,rotate", [(6, 90), (8, 270), (3, 180)])
def test_jpeg_exif_orientation_is_applied(tmp_path, orientation, rotate):
    upright = PILImage.open(CXR_PNG).convert("L").resize((200, 160))  # not square: a transpose shows
    stored = upright.rotate(rotate, expand=True)                       # what a phone writes
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "phone.jpg"
    stored.save(p, exif=exif, quality=95)
    image = read_image(p)
    assert image.array.shape == (160, 200)
    diff = np.abs(image.array - np.asarray(upright, np.float32)).mean()
    assert diff < 6, diff  # JPEG noise only: the pixels are upright again
    assert any(f"EXIF orientation {orientation}" in w for w in image.meta["warnings"])


def test_multi_frame_tiff_and_dicom_say_frames_were_dropped(tmp_path):
    frames = [PILImage.open(CXR_PNG).convert("L").resize((64, 64)), PILImage.new("L", (64, 64), 0),
              PILImage.new("L", (64, 64), 255)]
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    image = read_image(tmp_path / "pages.tif")
    assert np.array_equal(image.array, np.asarray(frames[0], np.float32))
    assert any("3 frames" in w and "2 dropped" in w for w in image.meta["warnings"])

    import pydicom

    arr = np.asarray(frames[0], np.uint16) * 16
    p = dx_dicom(tmp_path / "multi.dcm", arr)
    ds = pydicom.dcmread(str(p))
    ds.NumberOfFrames = 2
    ds.PixelData = arr.tobytes() + (arr // 2).tobytes()
    ds.save_as(str(p))
    image = read_image(p)
    assert image.array.shape == (64, 64) and any("2 frames" in w and "1 dropped" in w for w in image.meta["warnings"])


def test_one_lung_field_cut_into_right_and_left_is_flagged():
    labels = np.zeros((100, 100), np.uint8)
    labels[20:80, 10:45], labels[20:80, 55:90] = 1, 2  # two lungs apart: fine
    assert not one_field_split(labels)
    single = np.zeros((100, 100), np.uint8)
    single[20:80, 30:50], single[20:80, 50:70] = 1, 2  # one field cut at its middle
    assert one_field_split(single)
    m = {"structures": {"both": {"pixel_count": 2400}, "right": {"pixel_count": 1200},
                        "left": {"pixel_count": 1200}}, "right_left_area_ratio": 1.0}
    assert "one_lung_field_split_into_right_left" in qc_cxr(single, m)["flags"]
    assert "one_lung_field_split_into_right_left" not in qc_cxr(labels, m)["flags"]


def test_mirrored_radiographs_are_flagged_normal_ones_are_not():
    """Montgomery reference lung masks (right lung on the image's left): none flagged; most mirrors flagged."""
    masks = sorted(shared_path("cxr", "montgomery", "masks").glob("*.png"))[:30]
    normal = mirrored = 0
    for p in masks:
        m = np.asarray(PILImage.open(p).convert("L").resize((256, 256), PILImage.NEAREST)) > 0
        normal += FLAG in orientation_flags(split_sides(m))[0]
        mirrored += FLAG in orientation_flags(split_sides(np.ascontiguousarray(m[:, ::-1])))[0]
    assert normal == 0 and mirrored >= 0.6 * len(masks), (normal, mirrored)
    m = {"structures": {"both": {"pixel_count": 1}, "right": {"pixel_count": 1}, "left": {"pixel_count": 1}}}
    mask = np.asarray(PILImage.open(masks[0]).convert("L").resize((256, 256), PILImage.NEAREST)) > 0
    assert "heart_offset" in qc_cxr(split_sides(mask), m)["orientation"]  # the radiograph QC runs the check


@pytest.mark.parametrize("orientation,turn", [(["R", "F"], lambda a: a[:, ::-1]), (["L", "H"], lambda a: a[::-1]),
                                              (["R", "H"], lambda a: a[::-1, ::-1]), (["F", "L"], lambda a: a.T),
                                              (["L", "F"], lambda a: a)])
def test_dicom_patient_orientation_turns_a_radiograph_to_the_standard_view(tmp_path, orientation, turn):
    import pydicom

    upright = np.asarray(PILImage.open(CXR_PNG).convert("L").resize((96, 80)), np.uint16) * 16
    p = dx_dicom(tmp_path / "dx.dcm", np.ascontiguousarray(turn(upright)))
    ds = pydicom.dcmread(str(p))
    ds.PatientOrientation = orientation
    ds.save_as(str(p))
    image = read_image(p)
    assert np.array_equal(image.array, upright.astype(np.float32))
    noted = any("PatientOrientation" in w for w in image.meta.get("warnings", []))
    assert noted == (orientation != ["L", "F"])
