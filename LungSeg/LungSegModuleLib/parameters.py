"""The panel's parameter node and its choices (one place; the .ui binds to these field names)."""

import enum
import pathlib
from typing import Annotated

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper


class Engine(enum.Enum):
    auto = "auto"
    hu = "hu"
    ct2d = "ct2d"
    ct3d = "ct3d"
    ct2d_ct3d = "ct2d+ct3d"
    cxr = "cxr"

    def label(self):
        return {"auto": _("auto"), "hu": _("HU threshold (no model)"), "ct2d": _("CT slice-wise network"),
                "ct3d": _("CT 3D network"), "ct2d+ct3d": _("CT slice-wise + 3D networks (mean)"),
                "cxr": _("radiograph network")}[self.value]


class Arch(enum.Enum):
    auto = "auto"
    unet = "unet"
    resunet = "resunet"

    def label(self):
        return {"auto": _("auto (best validated)"), "unet": "UNet", "resunet": "ResUNet"}[self.value]


class Device(enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"

    def label(self):
        return {"auto": _("auto"), "cpu": "CPU", "cuda": _("GPU (CUDA)")}[self.value]


class Modality(enum.Enum):
    auto = "auto"
    CT = "CT"
    CXR = "CXR"

    def label(self):
        return {"auto": _("auto (single slice = radiograph)"), "CT": "CT", "CXR": _("radiograph")}[self.value]


class Position(enum.Enum):
    auto = "auto"
    supine = "supine"
    prone = "prone"

    def label(self):
        return {"auto": _("auto (DICOM or orientation)"), "supine": _("supine"), "prone": _("prone")}[self.value]


@parameterNodeWrapper
class LungSegParameterNode:
    """Same field names as LungSegLib.params.Parameters and the regional options of LungSegLib.options.CaseOptions,
    plus the input and output nodes."""
    inputVolume: vtkMRMLScalarVolumeNode
    engine: Engine = Engine.auto
    arch: Arch = Arch.auto
    device: Device = Device.auto
    threads: Annotated[int, WithinRange(0, 256)] = 0
    modality: Modality = Modality.auto
    density: Annotated[float, WithinRange(0.5, 2.0)] = 1.0
    weights: pathlib.Path = pathlib.Path("")
    allow_non_hu: bool = False
    batch_size: Annotated[int, WithinRange(1, 512)] = 16
    levels: Annotated[int, WithinRange(1, 100)] = 10     # LungSegLib.options.CaseOptions: regional CT measurements
    position: Position = Position.auto
    outputSegmentation: vtkMRMLSegmentationNode
    outputTable: vtkMRMLTableNode
