"""Options of a ``lungseg segment`` run beyond :class:`~LungSegLib.params.Parameters` (whose fields mirror the
Slicer panel one to one): how the regional CT measurements are cut, and whether a DICOM SEG is written."""

from __future__ import annotations

from dataclasses import dataclass

POSITIONS = ("auto", "supine", "prone")


@dataclass
class CaseOptions:
    levels: int = 10              # ventral->dorsal levels of the regional CT measurements
    position: str = "auto"        # auto | supine | prone (the dependent side; auto: DICOM or direction matrix)
    dicom_seg: bool = False       # also write lungs.seg.dcm for a DICOM CT series or radiograph

    def validate(self) -> "CaseOptions":
        from .errors import LungSegError

        if not 1 <= int(self.levels) <= 100:
            raise LungSegError(f"levels must be between 1 and 100; got {self.levels}")
        if self.position not in POSITIONS:
            raise LungSegError(f"position must be one of {', '.join(POSITIONS)}; got {self.position!r}")
        return self
