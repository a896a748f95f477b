"""The child process of a background run (:mod:`LungSegLib.background`): one image in, one result out.

    PythonSlicer LungSegLib/worker.py RUNDIR

RUNDIR/input.npz holds the image (voxels and full geometry, written by the parent from the volume node)
and RUNDIR/params.json the :class:`Parameters` (RUNDIR/options.json the :class:`CaseOptions`, when there).
The worker runs :func:`pipeline.segment_image` (the same call the in-process logic makes), prints
``LUNGSEG-PROGRESS <fraction> <message>`` lines, and writes
RUNDIR/result.npz (labels) and RUNDIR/result.json (engine, model, measurements, qc, warnings) under
temporary names renamed at the end, so the parent never reads half a result. A problem the user can fix
is one ``LUNGSEG-ERROR <message>`` line and exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by path: make "import LungSegLib" work
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROGRESS, ERROR = "LUNGSEG-PROGRESS", "LUNGSEG-ERROR"
IMAGE_FIELDS = ("spacing", "origin", "direction", "modality", "spacing_known")


def save_image(image, path: Path) -> None:
    """Voxels, geometry and the reader's facts (``meta``: warnings, DICOM modality, scaling...: the checks
    of :func:`validate.check_image` need them in the child too), without pickling."""
    import numpy as np

    np.savez(path, array=image.array, meta=np.asarray(json.dumps(image.meta, default=str)),
             **{k: np.asarray(getattr(image, k)) for k in IMAGE_FIELDS})


def load_image(path: Path, array_key: str = "array"):
    import numpy as np

    from LungSegLib.image import Image

    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
        return Image(np.array(data[array_key]), spacing=tuple(data["spacing"].tolist()),
                     origin=tuple(data["origin"].tolist()), direction=tuple(data["direction"].tolist()),
                     modality=str(data["modality"]), spacing_known=bool(data["spacing_known"]), meta=meta)


def _replace_atomically(write, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.part{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rundir = Path(argv[0])
    from LungSegLib.errors import LungSegError
    from LungSegLib.options import CaseOptions
    from LungSegLib.params import Parameters
    from LungSegLib.pipeline import segment_image
    from LungSegLib.report import _jsonable

    def progress(fraction, message):
        print(f"{PROGRESS} {fraction:.3f} {message}", flush=True)
        return True

    try:
        image = load_image(rundir / "input.npz")
        params = Parameters(**json.loads((rundir / "params.json").read_text()))
        options_file = rundir / "options.json"
        options = CaseOptions(**json.loads(options_file.read_text())) if options_file.is_file() else None
        result = segment_image(image, params, progress, options=options)
    except LungSegError as e:
        print(f"{ERROR} {e}", flush=True)
        return 1
    report = {"engine": result.engine, "model": {k: v for k, v in result.model.items() if k != "weights_path"},
              "measurements": result.measurements, "qc": result.qc, "warnings": result.warnings,
              "timings": result.timings}
    _replace_atomically(lambda p: save_image(result.labels, p), rundir / "result.npz")
    text = json.dumps(_jsonable(report), default=str)  # numpy scalars as numbers, as measurements.json has them
    _replace_atomically(lambda p: p.write_text(text), rundir / "result.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
