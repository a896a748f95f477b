"""All user-facing parameters in one dataclass.

The CLI flags, the Slicer parameter node (``LungSeg/LungSeg.py``) and the tests use these field names.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

ENGINES = ("auto", "hu", "ct2d", "ct3d", "ct2d+ct3d", "cxr")
ARCHS = ("auto", "unet", "resunet")
DEVICES = ("auto", "cpu", "cuda")
MODALITIES = ("auto", "CT", "CXR")
MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))  # more threads than this only slows torch down (or crashes it)
MAX_BATCH = 1024


@dataclass
class Parameters:
    engine: str = "auto"          # auto | hu | ct2d | ct3d | ct2d+ct3d (mean of both) | cxr
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
        if not 0 <= int(self.threads) <= MAX_THREADS:
            raise LungSegError(f"threads must be between 0 and {MAX_THREADS} (0 = torch's default; this machine has "
                               f"{os.cpu_count()} CPU cores); got {self.threads}")
        if self.weights:
            from .limits import require_regular

            require_regular(self.weights)  # a FIFO given as weights would block torch.load forever
            if self.engine == "ct2d+ct3d":
                raise LungSegError("weights: one weights file cannot serve the ct2d+ct3d ensemble; give --weights "
                                   "with engine ct2d or ct3d")
        if not 1 <= int(self.batch_size) <= MAX_BATCH:
            raise LungSegError(f"batch_size must be between 1 and {MAX_BATCH}; got {self.batch_size}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list:
        return [f.name for f in fields(cls)]
