"""LungSegLib.mrml / mrml_io against real MRML (slicer-core): geometry, segments, table, storage nodes."""

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")
slicerio = pytest.importorskip("slicerio")

from conftest import SAMPLES, SHARED  # noqa: E402
from LungSegLib import mrml, mrml_io  # noqa: E402
from LungSegLib.errors import CancelledError  # noqa: E402
from LungSegLib.image import CXR, Image  # noqa: E402
from LungSegLib.io import SEGMENTS, read_image  # noqa: E402
from LungSegLib.params import Parameters  # noqa: E402
from LungSegLib.phantom import chest_phantom  # noqa: E402
from LungSegLib.pipeline import segment_image  # noqa: E402

HU = Parameters(engine="hu")
# i -> patient's right (-x in LPS, i.e. flipped), j -> posterior tilted 10 degrees about x, k -> inferior (flipped)
TILT = np.deg2rad(10.0)
DIRECTION = np.array([[-1.0, 0.0, 0.0],
                      [0.0, np.cos(TILT), np.sin(TILT)],
                      [0.0, np.sin(TILT), -np.cos(TILT)]])


def oblique_phantom():
    image, truth, volume_ml = chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))
    image.direction = tuple(DIRECTION.ravel())
    image.origin = (120.0, -80.0, 60.0)
    return image, truth


def volume_node_from_lps(scene, image: Image):
    """Build the node by hand (not through mrml.image_to_volume_node): RAS = diag(-1, -1, 1) LPS."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "oblique CT")
    node.SetSpacing(*image.spacing)
    node.SetOrigin(-image.origin[0], -image.origin[1], image.origin[2])
    ras_direction = np.diag([-1.0, -1.0, 1.0]) @ np.asarray(image.direction).reshape(3, 3)
    m = slicer.util.vtkMatrixFromArray(np.eye(4))
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, ras_direction[r, c])
    node.SetIJKToRASDirectionMatrix(m)
    slicer.util.updateVolumeFromArray(node, image.array)
    return node


@pytest.fixture(scope="module")
def oblique_run():
    scene = mrml.new_scene()
    image, truth = oblique_phantom()
    node = volume_node_from_lps(scene, image)
    seg, table, result = mrml_io.segment_volume_node(node, HU)
    reference = segment_image(oblique_phantom()[0], HU)  # LungSegLib alone on the same array + geometry
    return scene, node, seg, table, result, reference, truth


def test_volume_node_geometry_matches_lps_image():
    scene = mrml.new_scene()
    image, _ = oblique_phantom()
    node = volume_node_from_lps(scene, image)
    back = mrml.volume_node_to_image(node)
    assert np.array_equal(back.array, image.array) and back.modality == "CT"
    assert np.allclose(back.ijk_to_lps(), image.ijk_to_lps())
    ijk_to_ras = slicer.util.vtkMatrixFromArray(np.eye(4))
    node.GetIJKToRASMatrix(ijk_to_ras)
    ras = np.array(ijk_to_ras.MultiplyPoint((7, 11, 5, 1)))[:3]
    lps = np.array(image.to_sitk().TransformIndexToPhysicalPoint((7, 11, 5)))
    assert np.allclose(ras, lps * [-1, -1, 1])
    pushed = mrml.image_to_volume_node(image, scene, "pushed")
    pushed_matrix = slicer.util.vtkMatrixFromArray(np.eye(4))
    pushed.GetIJKToRASMatrix(pushed_matrix)
    assert np.allclose(slicer.util.arrayFromVTKMatrix(pushed_matrix), slicer.util.arrayFromVTKMatrix(ijk_to_ras))
    assert np.array_equal(slicer.util.arrayFromVolume(pushed), image.array)


def test_segmentation_labelmap_equals_lungseglib_mask(oblique_run):
    scene, node, seg, table, result, reference, truth = oblique_run
    labels = mrml.segmentation_to_labels(seg, node)
    assert labels.shape == reference.labels.array.shape
    assert np.array_equal(labels, reference.labels.array)
    # i is flipped (points to the patient's right), so the phantom's index-low lung (label 1) is the LEFT lung
    swapped = np.choose(truth, [0, 2, 1]).astype(np.uint8)
    for value in (1, 2):
        a, b = labels == value, swapped == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95


def test_segment_ids_names_colours_terminology(oblique_run):
    seg = oblique_run[2].GetSegmentation()
    assert [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())] == ["right_lung", "left_lung"]
    for value, seg_id, name, colour, modifier in SEGMENTS:
        segment = seg.GetSegment(seg_id)
        assert segment.GetName() == name
        assert np.allclose(segment.GetColor(), colour)
        tag = vtk.reference("")
        assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
        tag = str(tag)
        assert f"SCT^{modifier[0]}^{modifier[1]}" in tag and "SCT^39607008^Lung" in tag


def test_table_values_equal_lungseglib_measurements(oblique_run):
    table, reference = oblique_run[3], oblique_run[5]
    vtk_table = table.GetTable()
    assert [vtk_table.GetValueByName(r, "structure").ToString() for r in range(3)] == ["Right lung", "Left lung",
                                                                                        "Both lungs"]
    expected = reference.measurements["structures"]
    for column in mrml.CT_COLUMNS:
        for r, structure in enumerate(("right", "left", "both")):
            assert vtk_table.GetValueByName(r, column).ToDouble() == pytest.approx(expected[structure][column],
                                                                                    rel=1e-12, abs=1e-12)
        assert table.GetColumnUnitLabel(column) == reference.measurements["units"][column]
    assert vtk_table.GetColumnByName("qc_flags") is None  # QC has its own place, not a column per row
    assert table.GetAttribute("LungSeg.qcFlags") == ";".join(reference.qc["flags"])
    assert table.GetAttribute("LungSeg.engine") == "hu"


def test_table_titles_units_and_band_limits_for_a_slicer_user(oblique_run):
    table = oblique_run[3]
    titles = {c: table.GetColumnTitle(c) for c in ["structure", *mrml.CT_COLUMNS]}
    assert titles["structure"] == "Structure" and titles["voxel_count"] == "Voxels"
    assert (titles["volume_ml"], titles["weight_g"], titles["gas_volume_ml"], titles["mean_hu"]) == (
        "Volume [mL]", "Weight [g]", "Gas volume [mL]", "Mean [HU]")
    assert titles["over_aerated_volume_fraction"] == "Over-aerated volume [fraction]"
    assert table.GetUseColumnTitleAsColumnHeader()
    bands = {c: table.GetColumnDescription(c) for c in mrml.CT_COLUMNS if c.endswith("_fraction")}
    assert bands["over_aerated_volume_fraction"] == "fraction of the structure's volume in the over-aerated " \
                                                   "(< -900 HU) band"
    assert bands["normally_aerated_weight_fraction"].endswith("normally-aerated (-900 HU to -500 HU) band")
    assert bands["non_aerated_volume_fraction"].endswith("non-aerated (>= -100 HU) band")
    assert "density" in table.GetColumnDescription("weight_g")


def test_seg_nrrd_through_storage_node_reads_back_with_slicerio(oblique_run, tmp_path):
    _, node, seg_node, table, _, reference, _ = oblique_run
    path = mrml_io.save_segmentation(seg_node, tmp_path / "lungs.seg.nrrd")
    assert [p.name for p in tmp_path.iterdir()] == ["lungs.seg.nrrd"]  # no temporary file left
    seg = slicerio.read_segmentation(str(path))
    assert [(s["id"], s["name"]) for s in seg["segments"]] == [(i, n) for _, i, n, _, _ in SEGMENTS]
    assert [s["terminology"]["typeModifier"][1] for s in seg["segments"]] == ["24028007", "7771000"]
    extracted = slicerio.extract_segments(seg, [("Right lung", 1), ("Left lung", 2)])
    assert np.allclose(extracted["ijkToLPS"], reference.labels.ijk_to_lps())
    assert np.array_equal(extracted["voxels"].T, reference.labels.array)
    mrml_io.save_table(table, tmp_path / "measurements.csv")
    text = (tmp_path / "measurements.csv").read_text().splitlines()
    assert text[0].startswith('"structure","voxel_count","volume_ml","weight_g"') and len(text) == 4
    assert '"mL"' in (tmp_path / "measurements.schema.csv").read_text()


def test_load_volume_via_storage_node_equals_lungseglib_reader():
    scene = mrml.new_scene()
    node = mrml_io.load_volume(SAMPLES / "ct-64.nrrd", scene)
    assert node.GetStorageNode().GetClassName() == "vtkMRMLVolumeArchetypeStorageNode"
    image, direct = mrml.volume_node_to_image(node), read_image(SAMPLES / "ct-64.nrrd")
    assert np.array_equal(image.array, direct.array) and np.allclose(image.ijk_to_lps(), direct.ijk_to_lps())
    dicom = SHARED / "ct" / "cip-copdgene-ct64" / "ct-64Dicom"
    if dicom.is_dir():  # the same CT as a DICOM series, through LungSegLib's reader (geometry from the tags)
        series = mrml.volume_node_to_image(mrml_io.load_volume(dicom, scene))
        assert np.array_equal(series.array, direct.array)
        assert np.allclose(series.ijk_to_lps(), direct.ijk_to_lps(), atol=1e-3)


def synthetic_radiograph():
    y, x = np.mgrid[0:160, 0:192].astype(np.float32)
    arr = 200 - 120 * ((((x - 60) / 35) ** 2 + ((y - 80) / 55) ** 2) < 1) - 120 * ((((x - 132) / 35) ** 2 +
                                                                                     ((y - 80) / 55) ** 2) < 1)
    return Image(arr.astype(np.float32), spacing=(0.4, 0.5), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0),
                 modality=CXR, spacing_known=True)


def test_radiograph_as_single_slice_volume(random_weights):
    scene = mrml.new_scene()
    image = synthetic_radiograph()
    node = mrml.image_to_volume_node(image, scene, "CXR")
    assert node.GetImageData().GetDimensions() == (192, 160, 1)
    back = mrml.volume_node_to_image(node)
    assert back.modality == CXR and back.ndim == 2 and back.spacing == (0.4, 0.5)
    params = Parameters(engine="auto", weights=str(random_weights("cxr")), device="cpu")
    seg, table, result = mrml_io.segment_volume_node(node, params)
    assert result.engine == "cxr"
    assert np.array_equal(mrml.segmentation_to_labels(seg, node), result.labels.array[None])
    rows = mrml.table_to_rows(table)
    assert [r["structure"] for r in rows] == ["Right lung", "Left lung", "Both lungs"]
    assert set(rows[0]) == {"structure", "pixel_count", "area_cm2"}
    assert table.GetColumnTitle("area_cm2") == "Area [cm\u00b2]" and table.GetColumnTitle("pixel_count") == "Pixels"
    assert table.GetTable().GetValueByName(2, "pixel_count").ToInt() == result.measurements["structures"]["both"][
        "pixel_count"]
    picture = mrml_io.load_volume(SAMPLES / "montgomery_MCUCXR_0001_0.png", scene)  # PIL, not the storage node
    assert picture.GetImageData().GetDimensions()[2] == 1
    assert mrml.volume_node_to_image(picture).spacing_known is False


def test_cancel_from_progress_callback(random_weights):
    scene = mrml.new_scene()
    node = mrml.image_to_volume_node(synthetic_radiograph(), scene, "CXR")
    before = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    calls = []

    def stop(fraction, message):
        calls.append((fraction, message))
        return False

    with pytest.raises(CancelledError):
        mrml_io.segment_volume_node(node, Parameters(engine="cxr", weights=str(random_weights("cxr"))), stop)
    assert calls and scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == before


def test_rerun_reuses_given_nodes():
    scene = mrml.new_scene()
    node = mrml.image_to_volume_node(oblique_phantom()[0], scene, "CT")
    seg, table, _ = mrml_io.segment_volume_node(node, HU)
    seg2, table2, _ = mrml_io.segment_volume_node(node, HU, segmentation_node=seg, table_node=table)
    assert (seg2, table2) == (seg, table)
    assert seg.GetSegmentation().GetNumberOfSegments() == 2 and table.GetNumberOfRows() == 3


def test_results_go_under_the_input_study_in_the_subject_hierarchy():
    scene = mrml.new_scene()
    sh = slicer.vtkMRMLSubjectHierarchyNode.ResolveSubjectHierarchy(scene)
    study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient 1"), "Chest CT 2024")
    node = mrml.image_to_volume_node(chest_phantom(shape=(32, 48, 48), spacing=(4.0, 4.0, 4.0))[0], scene, "ct")
    sh.CreateItem(study, node)
    seg, table, _ = mrml_io.segment_volume_node(node, HU)
    regions = scene.GetNodeByID(table.GetAttribute("LungSeg.regionsTable"))  # issue 11's second table
    for result_node in (seg, table, regions):
        assert sh.GetItemParent(sh.GetItemByDataNode(result_node)) == study
    again = mrml_io.segment_volume_node(node, HU, segmentation_node=seg, table_node=table)
    assert again[:2] == (seg, table) and sh.GetNumberOfItemChildren(study) == 4  # reused, not duplicated


def test_a_volume_under_a_scaling_or_shearing_transform_is_refused_a_rigid_one_is_measured():
    """Issue 12 sibling of sheared grids: a parent transform that changes voxel sizes (e.g. Slicer's
    acquisition transform of a tilted series) would make every volume wrong."""
    from badinputs import HU, phantom
    from LungSegLib.errors import LungSegError

    scene = mrml.new_scene()
    image, _, _ = phantom()
    node = mrml.image_to_volume_node(image, scene, "ct")
    plain = mrml_io.segment_volume_node(node, HU)[2].measurements["structures"]["both"]["volume_ml"]
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "acquisition")
    node.SetAndObserveTransformNodeID(transform.GetID())
    shear = np.eye(4)
    shear[1, 2] = 0.3
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shear))
    with pytest.raises(LungSegError, match="transform 'acquisition', which scales or shears.*Harden transform"):
        mrml_io.segment_volume_node(node, HU)
    rotation = np.eye(4)
    rotation[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(rotation))
    rigid = mrml_io.segment_volume_node(node, HU)[2].measurements["structures"]["both"]["volume_ml"]
    assert rigid == pytest.approx(plain)
