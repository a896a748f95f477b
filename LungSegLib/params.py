"""All user-facing parameters in one dataclass.

The CLI flags, the Slicer parameter node (``LungSeg/LungSeg.py``) and the tests use these field names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

ENGINES = ("auto", "hu", "ct2d", "ct3d", "cxr")
ARCHS = ("auto", "unet", "resunet")
DEVICES = ("auto", "cpu", "cuda")
MODALITIES = ("auto", "CT", "CXR")


@dataclass
class Parameters:
    engine: str = "auto"          # auto | hu | ct2d | ct3d | cxr
    arch: str = "auto"            # auto (the best-validated shipped model) | unet | resunet
    device: str = "auto"          # auto | cpu | cuda
    threads: int = 0              # torch intra-op threads; 0 = library default
    modality: str = "auto"        # auto | CT | CXR (force the detected modality)
    density: float = 1.0          # g/mL of lung tissue for weight_g (Gattinoni convention)
    weights: str = ""             # optional path to a weights file instead of the shipped model
    allow_non_hu: bool = False    # expert override: run CT engines on data that does not look like HU
    batch_size: int = 16          # slices per forward pass for 2D engines

    def validate(self) -> "Parameters":
        from .errors import LungSegError

        checks = (("engine", ENGINES), ("arch", ARCHS), ("device", DEVICES), ("modality", MODALITIES))
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise LungSegError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if not (0.5 <= float(self.density) <= 2.0):
            raise LungSegError(f"density must be between 0.5 and 2.0 g/mL; got {self.density}")
        if int(self.threads) < 0 or int(self.batch_size) < 1:
            raise LungSegError("threads must be >= 0 and batch_size >= 1")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list:
        return [f.name for f in fields(cls)]
