"""Qt-free bridge between LungSegLib and Slicer's MRML scene.

Every function takes the scene (or a node that lives in one) as an argument, so the same code runs
inside the Slicer application (``slicer.mrmlScene``) and in plain Python with ``slicer-core``
(:func:`new_scene` builds a scene with the module logics the app would have registered).

Geometry: an :class:`~LungSegLib.image.Image` keeps ITK's LPS geometry; a volume node keeps an
IJK->RAS matrix. The two differ only by the sign of the first two world axes, so conversion is exact
for any direction (oblique included). A radiograph is a volume with a single slice (k = 1).
"""

from __future__ import annotations

import json

import numpy as np

from .errors import LungSegError
from .image import CT, CXR, Image
from .io import SEGMENTS, segment_terminology

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SPACING_KNOWN_ATTRIBUTE = "LungSeg.SpacingKnown"
READER_META_ATTRIBUTE = "LungSeg.ReaderMeta"  # JSON of what LungSegLib's reader found about the input
READER_META_KEYS = ("warnings", "dicom_modality", "image_type", "scout", "single_slice", "scaling", "view",
                    "series_uid", "series_slices", "input_size", "downscale_factor", "bits", "photometric",
                    # the DICOM sources a --dicom-seg of the node's voxels references (lungseg_batch.py)
                    "dicom_files", "dicom_radiograph", "dicom_resampled", "dicom_multiframe",
                    "dicom_frame_order")
CT_COLUMNS = ["voxel_count", "volume_ml", "weight_g", "gas_volume_ml", "mean_hu",
              "over_aerated_volume_fraction", "normally_aerated_volume_fraction",
              "poorly_aerated_volume_fraction", "non_aerated_volume_fraction",
              "over_aerated_weight_fraction", "normally_aerated_weight_fraction",
              "poorly_aerated_weight_fraction", "non_aerated_weight_fraction"]
CXR_COLUMNS = ["pixel_count", "area_cm2"]
COLUMN_DESCRIPTIONS = {
    "structure": "Right lung, Left lung (the segments), or Both lungs",
    "voxel_count": "voxels in the structure",
    "volume_ml": "voxel count x voxel volume",
    "weight_g": "sum(voxel mL x clip((HU+1000)/1000, 0, 1)) x density",
    "gas_volume_ml": "sum(voxel mL x clip(-HU/1000, 0, 1))",
    "mean_hu": "mean CT value in the structure",
    "pixel_count": "projected lung pixels on the radiograph",
    "area_cm2": "projected lung area (nan when the pixel spacing is unknown)",
}
_KEEP_ALIVE = []  # logics created for scenes outside the app must outlive this call


def _slicer():
    try:
        import slicer
    except ImportError as e:
        raise LungSegError("the MRML bridge needs 3D Slicer or the 'slicer-core' package "
                           "(pip install slicer-core==5.12.4.0)") from e
    return slicer


def in_slicer_app() -> bool:
    """True inside the Slicer application (not in plain Python with slicer-core)."""
    slicer = _slicer()
    return getattr(slicer, "app", None) is not None


def new_scene():
    """An empty scene with the application, colour, volumes and segmentations logics registered, as
    in the Slicer app (the segmentations logic registers the representation converters)."""
    slicer = _slicer()
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    colors = app_logic.GetColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    app_logic.SetModuleLogic("Colors", colors)
    logics = [app_logic, colors]
    for name, cls in (("Volumes", slicer.vtkSlicerVolumesLogic),
                      ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic)):
        logic = cls()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        app_logic.SetModuleLogic(name, logic)
        logics.append(logic)
    _KEEP_ALIVE.append((scene, logics))
    return scene


def get_scene(scene=None):
    """``scene`` if given, else the app's scene inside Slicer, else a new app-like scene."""
    if scene is not None:
        return scene
    if in_slicer_app():
        return _slicer().mrmlScene
    return new_scene()


# ------------------------------------------------------------------------------------------ volumes
def ras_matrix(image: Image) -> np.ndarray:
    """4x4 IJK->RAS matrix of an Image (2D radiographs get a 1 mm thick single slice)."""
    lps = image.ijk_to_lps()
    if image.ndim == 2:
        m = np.eye(4)
        m[:2, :2] = lps[:2, :2]
        m[:2, 3] = lps[:2, 2]
        lps = m
    return LPS_TO_RAS @ lps


def image_to_volume_node(image: Image, scene, name: str = "", node=None):
    """Push an Image into a (new or given) vtkMRMLScalarVolumeNode with its full geometry."""
    slicer = _slicer()
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name or "Volume")
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ras_matrix(image)))
    array = image.array[None] if image.ndim == 2 else image.array
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.SetAttribute(SPACING_KNOWN_ATTRIBUTE, "1" if image.spacing_known else "0")
    reader_meta = {k: image.meta[k] for k in READER_META_KEYS if k in image.meta}
    if reader_meta:  # what the reader found (warnings, DICOM modality, scout...) travels with the node
        node.SetAttribute(READER_META_ATTRIBUTE, json.dumps(reader_meta, default=str))
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def transform_problem(node) -> str | None:
    """Words for a parent transform that changes voxel sizes (scale, shear, warp; e.g. the acquisition
    transform Slicer adds to a gantry-tilted series); None for no transform or a rigid one."""
    transform = node.GetParentTransformNode()
    if transform is None:
        return None
    name = transform.GetName() or transform.GetID()
    if not transform.IsTransformToWorldLinear():
        return f"the non-linear transform '{name}'"
    slicer = _slicer()
    m = slicer.util.vtkMatrixFromArray(np.eye(4))
    transform.GetMatrixTransformToWorld(m)
    a = slicer.util.arrayFromVTKMatrix(m)[:3, :3]
    if np.abs(a.T @ a - np.eye(3)).max() > 1e-4:
        return f"the transform '{name}', which scales or shears"
    return None


def volume_node_to_image(node) -> Image:
    """A copy of the node's voxels as an Image in LPS geometry; a single-slice volume is a radiograph."""
    slicer = _slicer()
    if node is None or node.GetImageData() is None:
        raise LungSegError("the input volume node is missing or holds no image data")
    problem = transform_problem(node)
    if problem:
        raise LungSegError(f"volume '{node.GetName()}' is under {problem}, so its voxels are not the size the "
                           "volume says and every measurement would be wrong; harden the transform (Data module, "
                           "right-click the transform, 'Harden transform') or remove it")
    array = np.array(slicer.util.arrayFromVolume(node))
    if array.ndim == 4:  # colour volume (e.g. an RGB radiograph picture): use the grey mean
        array = array[..., :3].mean(axis=-1).astype(np.float32)
    m = slicer.util.vtkMatrixFromArray(np.eye(4))
    node.GetIJKToRASMatrix(m)
    lps = LPS_TO_RAS @ slicer.util.arrayFromVTKMatrix(m)
    spacing = np.array(node.GetSpacing(), float)
    direction = lps[:3, :3] / spacing
    known = node.GetAttribute(SPACING_KNOWN_ATTRIBUTE) != "0"
    meta = {"source": node.GetName() or node.GetID()}
    try:
        meta.update(json.loads(node.GetAttribute(READER_META_ATTRIBUTE) or "{}"))
    except ValueError:
        pass
    if array.shape[0] == 1:
        return Image(array[0], spacing=tuple(spacing[:2]), origin=tuple(lps[:2, 3]),
                     direction=tuple(direction[:2, :2].ravel()), modality=CXR, spacing_known=known, meta=meta)
    return Image(array, spacing=tuple(spacing), origin=tuple(lps[:3, 3]), direction=tuple(direction.ravel()),
                 modality=CT, spacing_known=known, meta=meta)


# ------------------------------------------------------------------------------------- segmentation
def labels_to_segmentation_node(labels: np.ndarray, volume_node, segmentation_node=None, name: str = ""):
    """Segments "Right lung" (label 1) and "Left lung" (label 2) with fixed IDs, colours and anatomic
    terminology, from a label array on the volume's voxel grid (numpy (k, j, i) or (j, i))."""
    slicer = _slicer()
    from vtk.util import numpy_support

    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    dims = volume_node.GetImageData().GetDimensions()
    if labels.shape != tuple(reversed(dims)):
        raise LungSegError(f"label array of shape {labels.shape} does not fit the volume's voxel grid "
                           f"{tuple(reversed(dims))}")
    scene = volume_node.GetScene()
    seg_node = segmentation_node or scene.AddNewNodeByClass(
        "vtkMRMLSegmentationNode", name or f"{volume_node.GetName()} lungs")
    seg_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    if seg_node.GetDisplayNode() is None:
        seg_node.CreateDefaultDisplayNodes()
    segmentation = seg_node.GetSegmentation()
    ijk_to_ras = slicer.util.vtkMatrixFromArray(np.eye(4))
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    for value, seg_id, seg_name, color, modifier in SEGMENTS:
        if segmentation.GetSegment(seg_id) is not None:
            segmentation.RemoveSegment(seg_id)
        segmentation.AddEmptySegment(seg_id, seg_name, list(color))
        segment = segmentation.GetSegment(seg_id)
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), segment_terminology(modifier))
        mask = slicer.vtkOrientedImageData()
        mask.SetDimensions(*dims)
        mask.SetImageToWorldMatrix(ijk_to_ras)
        voxels = np.ascontiguousarray(labels == value, dtype=np.uint8).ravel()
        mask.GetPointData().SetScalars(numpy_support.numpy_to_vtk(voxels, deep=True,
                                                                  array_type=numpy_support.get_vtk_array_type(np.uint8)))
        if not logic.SetBinaryLabelmapToSegment(mask, seg_node, seg_id, logic.MODE_REPLACE, mask.GetExtent()):
            raise LungSegError(f"could not write segment {seg_id} into {seg_node.GetName()}")
    return seg_node


def segmentation_to_labels(segmentation_node, volume_node) -> np.ndarray:
    """Labels (0/1 right/2 left, numpy (k, j, i)) of the lung segments on the volume's voxel grid."""
    slicer = _slicer()
    import vtk

    scene = volume_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "LungSeg export")
    try:
        out = np.zeros(tuple(reversed(volume_node.GetImageData().GetDimensions())), np.uint8)
        for value, seg_id, *_ in SEGMENTS:
            ids = vtk.vtkStringArray()
            ids.InsertNextValue(seg_id)
            if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                    segmentation_node, ids, labelmap, volume_node):
                raise LungSegError(f"could not export segment {seg_id} from {segmentation_node.GetName()}")
            out[slicer.util.arrayFromVolume(labelmap) > 0] = value
        return out
    finally:
        scene.RemoveNode(labelmap)


# ---------------------------------------------------------------------------------------------- table
def measurements_to_table_node(measurements: dict, qc: dict, scene, table_node=None, name: str = "Lung measurements"):
    """One row per structure, named like the segments (Right lung, Left lung, Both lungs); a column per
    measurement with a title and unit ("Volume [mL]") and its method as the description. QC is not
    repeated per row: the flags are the table's ``LungSeg.qcFlags`` attribute and, in words, ``LungSeg.qc``."""
    slicer = _slicer()
    import vtk

    from .wording import STRUCTURE_NAMES, column_description, column_title, qc_sentences

    table = table_node or scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    structures = measurements["structures"]
    keys = next(iter(structures.values())).keys()
    columns = [c for c in CT_COLUMNS + CXR_COLUMNS if c in keys] + \
              [k for k in keys if k not in CT_COLUMNS + CXR_COLUMNS]
    with slicer.util.NodeModify(table):
        table.RemoveAllColumns()
        names = vtk.vtkStringArray()
        names.SetName("structure")
        arrays = []
        for column in columns:
            array = vtk.vtkDoubleArray() if column not in ("voxel_count", "pixel_count") else vtk.vtkLongLongArray()
            array.SetName(column)
            arrays.append(array)
        for structure, values in structures.items():
            names.InsertNextValue(STRUCTURE_NAMES.get(structure, structure))
            for column, array in zip(columns, arrays):
                value = values.get(column)
                array.InsertNextValue(float("nan") if value is None else value)
        for array in [names, *arrays]:
            table.AddColumn(array)
        units = measurements.get("units", {})
        for column in ["structure", *columns]:
            if units.get(column):
                table.SetColumnUnitLabel(column, units[column])
            table.SetColumnTitle(column, column_title(column, units.get(column, "")))
            description = COLUMN_DESCRIPTIONS.get(column) or column_description(column)
            if description:
                table.SetColumnDescription(column, description)
        table.SetUseColumnTitleAsColumnHeader(True)
        table.SetAttribute("LungSeg.qcFlags", ";".join(qc.get("flags", [])))
        table.SetAttribute("LungSeg.qc", " ".join(qc_sentences(qc.get("flags", []))))
    return table


def table_to_rows(table_node) -> list:
    """The table as a list of {column: text} dicts (for tests and printing)."""
    table = table_node.GetTable()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    return [{n: table_node.GetCellText(r, c) for c, n in enumerate(names)} for r in range(table.GetNumberOfRows())]
