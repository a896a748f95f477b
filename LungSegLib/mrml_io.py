"""Loading and saving through MRML storage nodes (the classes Slicer itself uses), and the one call
that segments a volume node: :func:`segment_volume_node` (used by the module's logic, the Python
console and the headless batch script).

Radiograph pictures (PNG/JPEG/TIFF) and radiograph DICOM files cannot be read by Slicer's volume
storage node outside the app, so they go through :func:`LungSegLib.io.read_image` and are pushed
into a single-slice volume node. Every file is written atomically (temporary name, then rename).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import LungSegError
from .image import CT, CXR
from .dicom import split_series
from .geometry import storage_node_safe
from .limits import require_regular
from .io import VOLUME_SUFFIXES, atomic_path, case_name, read_image, suffix_of
from .mrml import (image_to_volume_node, labels_to_segmentation_node, measurements_to_table_node,
                   volume_node_to_image, _slicer)
from .params import Parameters


def load_volume(path, scene, name: str = "", modality: str = "auto"):
    """Load a CT volume file (NRRD/NIfTI/MHA) through the volume archetype storage node; a DICOM series
    folder (``FOLDER::SeriesInstanceUID`` picks one series, as ``lungseg segment`` does), a sheared volume
    file or a radiograph (picture or DICOM file) through LungSegLib's readers (their geometry checks);
    returns the node."""
    slicer = _slicer()
    folder, uid = split_series(path)
    if not folder.exists():
        raise LungSegError(f"{folder}: no such file or folder")
    require_regular(folder)
    name = name or case_name(folder)
    # DICOM series go through LungSegLib's reader (slice positions from the tags, tilt resampled, slices
    # without a position left out: the storage node would guess), so do files whose axes are sheared
    if (folder.is_dir() or uid is not None or suffix_of(folder) not in VOLUME_SUFFIXES
            or not storage_node_safe(folder)):
        return image_to_volume_node(read_image(path, modality), scene, name)  # same reader as the CLI
    first_file = str(folder)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    node.SetAndObserveStorageNodeID(storage.GetID())
    storage.SetFileName(first_file)
    storage.SetSingleFile(1)
    if not storage.ReadData(node) or node.GetImageData() is None:
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise LungSegError(f"{folder}: cannot be read as a volume by Slicer's volume reader")
    if node.GetImageData().GetNumberOfScalarComponents() > 1:
        scene.RemoveNode(node)
        scene.RemoveNode(storage)  # colour pictures stored as volumes: LungSegLib turns them grey
        return image_to_volume_node(read_image(folder, modality), scene, name)
    node.CreateDefaultDisplayNodes()
    return node


def _write_with_storage_node(node, path: Path, extra_suffixes=()):
    """Write ``node`` with its default storage node to a temporary name, then rename it (and the
    side files the storage node writes, e.g. ``.schema.csv``) into place."""
    scene = node.GetScene()
    storage = node.GetStorageNode()
    if storage is None:
        storage = node.CreateDefaultStorageNode()
        scene.AddNode(storage)
        node.SetAndObserveStorageNodeID(storage.GetID())
    storage.SetUseCompression(1)
    path = Path(path)
    with atomic_path(path) as tmp:
        storage.SetFileName(str(tmp))
        if not storage.WriteData(node):
            raise LungSegError(f"{path}: {node.GetClassName()} could not be written")
        for suffix in extra_suffixes:  # side files named after the temporary file
            side = Path(str(tmp)[: -len(path.suffix)] + suffix)
            if side.exists():
                os.replace(side, str(path)[: -len(path.suffix)] + suffix)
    storage.SetFileName(str(path))
    return path


def save_segmentation(segmentation_node, path) -> Path:
    """Save as a Slicer ``.seg.nrrd`` through vtkMRMLSegmentationStorageNode."""
    return _write_with_storage_node(segmentation_node, path)


def save_table(table_node, path) -> Path:
    """Save as ``.csv`` (plus Slicer's ``.schema.csv`` with units) through vtkMRMLTableStorageNode."""
    return _write_with_storage_node(table_node, path, extra_suffixes=(".schema.csv",))


def save_volume(volume_node, path) -> Path:
    """Save a volume (e.g. ``.nrrd``) through its default storage node."""
    return _write_with_storage_node(volume_node, path)


def segment_volume_node(volume_node, params: Parameters | None = None, progress=None,
                        segmentation_node=None, table_node=None, options=None):
    """Segment the lungs of a CT or radiograph volume node and measure them (``options``: a
    :class:`~LungSegLib.options.CaseOptions`, the regional levels and patient position).

    Returns ``(segmentation_node, table_node, result)``; new nodes are added to the volume's scene
    (or the given ones are filled). ``progress(fraction, message)`` returning False cancels.
    """
    from .pipeline import segment_image

    if volume_node is None or volume_node.GetScene() is None:
        raise LungSegError("select an input volume that is in the scene")
    image = volume_node_to_image(volume_node)
    result = segment_image(image, params or Parameters(), progress, options=options)
    seg, table = result_to_nodes(result, volume_node, segmentation_node, table_node)
    return seg, table, result


def result_to_nodes(result, volume_node, segmentation_node=None, table_node=None):
    """The segmentation and table nodes of a finished :class:`pipeline.Result` (in-process or from a
    background run) for ``volume_node``, which must still be in its scene."""
    if volume_node is None or volume_node.GetScene() is None:
        raise LungSegError("the input volume was removed from the scene while LungSeg was running")
    seg = labels_to_segmentation_node(result.labels.array, volume_node, segmentation_node)
    table = measurements_to_table_node(result.measurements, result.qc, volume_node.GetScene(), table_node,
                                       name=f"{volume_node.GetName()} lung measurements")
    for key, value in (("engine", result.engine), ("model", result.model.get("name") or ""),
                       ("modality", result.image.modality), ("volume", volume_node.GetID())):
        table.SetAttribute(f"LungSeg.{key}", str(value))
    from .mrml_regions import update_regions_table  # second table: ventral->dorsal levels and thirds (CT)

    regions = update_regions_table(result, table, volume_node.GetScene(), f"{volume_node.GetName()} lung regions")
    place_beside(volume_node, seg, table, *([regions] if regions is not None else []))
    return seg, table


def place_beside(volume_node, *nodes) -> None:
    """Put ``nodes`` under the input's parent in the subject hierarchy (its study, for DICOM data), where a
    Slicer user looks for results. Items are created when no subject hierarchy logic made them."""
    slicer = _slicer()
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volume_node.GetScene())
    volume_item = sh.GetItemByDataNode(volume_node) if sh is not None else 0
    if not volume_item:
        return
    parent = sh.GetItemParent(volume_item)
    for node in nodes:
        item = sh.GetItemByDataNode(node)
        if item:
            sh.SetItemParent(item, parent)
        else:
            sh.CreateItem(parent, node)


def engine_for_node(volume_node, params: Parameters) -> str:
    """The engine ``segment_volume_node`` will use ("auto" resolved; a single-slice volume is a radiograph)."""
    import numpy as np

    from .image import Image
    from .pipeline import choose_engine

    single_slice = volume_node is not None and volume_node.GetImageData() is not None and \
        volume_node.GetImageData().GetDimensions()[2] == 1
    modality = params.modality if params.modality != "auto" else (CXR if single_slice else CT)
    return choose_engine(Image(np.zeros((1, 1, 1)), modality=modality), params)


def input_problem(volume_node, params: Parameters) -> str:
    """Why this volume cannot be segmented with these parameters, in words; "" when it can."""
    if volume_node is None:
        return "Select an input volume."
    image_data = volume_node.GetImageData()
    if image_data is None:
        return f"{volume_node.GetName()} holds no image data."
    dims = image_data.GetDimensions()
    engine = engine_for_node(volume_node, params)
    if engine == "cxr" and dims[2] != 1:
        return f"Engine cxr needs a radiograph (a single-slice volume); {volume_node.GetName()} has {dims[2]} slices."
    if engine != "cxr" and dims[2] == 1:
        return f"Engine {engine} needs a CT volume; {volume_node.GetName()} is a single-slice image (use cxr or auto)."
    if engine != "cxr" and min(dims) < 8:
        return f"{volume_node.GetName()} has fewer than 8 voxels along an axis ({dims}); expected a chest CT."
    return ""
