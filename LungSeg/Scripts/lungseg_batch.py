#!/usr/bin/env python
"""Headless LungSeg batch: segment every case under --input and save Slicer files per case.

    python LungSeg/Scripts/lungseg_batch.py --input CASES --output OUT [--engine hu] [--arch unet] [--device cpu]
    Slicer --no-main-window --python-script LungSeg/Scripts/lungseg_batch.py -- --input CASES --output OUT

Each case (a file, a DICOM series folder, or a folder of those) is loaded into an MRML scene, segmented
by the same logic as the module, and saved as OUT/<case>/lungs.seg.nrrd (segmentation storage node) and
OUT/<case>/measurements.csv (table storage node, with measurements.schema.csv holding the units). Files
are written under a temporary name and renamed. Failed cases are reported on stderr and in
OUT/errors.csv and skipped; the exit status is 1 when any case failed, 2 for bad arguments.
"""

import argparse
import sys
import traceback
from dataclasses import fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if (REPO_ROOT / "LungSegLib" / "__init__.py").is_file():  # repo checkout; inside Slicer it is on sys.path
    sys.path.insert(0, str(REPO_ROOT))

from LungSegLib.errors import LungSegError  # noqa: E402
from LungSegLib.batch import ERROR_COLUMNS  # noqa: E402
from LungSegLib.io import case_name, list_cases, write_text  # noqa: E402
from LungSegLib.report import rows_to_csv  # noqa: E402
from LungSegLib.mrml import get_scene, in_slicer_app  # noqa: E402
from LungSegLib.mrml_io import load_volume, save_segmentation, save_table, segment_volume_node  # noqa: E402
from LungSegLib.params import ARCHS, DEVICES, ENGINES, MODALITIES, Parameters  # noqa: E402

CHOICES = {"engine": ENGINES, "arch": ARCHS, "device": DEVICES, "modality": MODALITIES}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="lungseg_batch.py", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, nargs="+", help="image file(s), DICOM folder(s) or folder(s) of cases")
    parser.add_argument("--output", required=True, help="output folder (one sub-folder per case)")
    for f in fields(Parameters):  # every Parameters field is an option, with the same name
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, action="store_true", help=f"(default {f.default})")
        else:
            kind = {"int": int, "float": float}.get(str(f.type), type(f.default))
            parser.add_argument(flag, type=kind, default=f.default, choices=CHOICES.get(f.name),
                                help=f"(default {f.default!r})")
    if argv and argv[0] == "--":  # Slicer may pass the separator through
        argv = argv[1:]
    return parser.parse_args(argv)


def run_one(scene, case: str, path: Path, outdir: Path, params: Parameters) -> dict:
    """Load, segment, save one case; returns the 'both' row of its measurements."""
    case_dir = outdir / case
    if not case_dir.resolve().is_relative_to(outdir.resolve()):
        raise LungSegError(f"case name {case!r} would write outside {outdir}")
    scene.Clear(0)
    volume = load_volume(path, scene, case, params.modality)
    segmentation, table, result = segment_volume_node(volume, params)
    case_dir.mkdir(parents=True, exist_ok=True)
    save_segmentation(segmentation, case_dir / "lungs.seg.nrrd")
    save_table(table, case_dir / "measurements.csv")
    return {"engine": result.engine, "flags": result.qc.get("flags", []), **result.measurements["structures"]["both"]}


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    params = Parameters(**{f.name: getattr(args, f.name) for f in fields(Parameters)})
    try:
        params.validate()
    except LungSegError as e:
        print(f"lungseg_batch: {e}", file=sys.stderr)
        return 2
    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    errors, cases = [], []
    for raw in args.input:  # a bad input path is one failed case, not the end of the batch
        try:
            cases.extend(list_cases([raw]))
        except LungSegError as e:
            errors.append({"case": case_name(Path(raw)), "input": str(raw), "error": str(e)})
            print(f"lungseg_batch: {e}", file=sys.stderr)
    scene = get_scene(None)
    done = 0
    for case, path in cases:
        try:
            both = run_one(scene, case, Path(path), outdir, params)
            size = f"{both['volume_ml']:.0f} mL" if "volume_ml" in both else f"{both.get('pixel_count')} pixels"
            flags = f" (QC: {', '.join(both['flags'])})" if both["flags"] else ""
            print(f"{case}: ok, engine {both['engine']}, both lungs {size}{flags}")
            done += 1
        except Exception as e:  # a bad case (or a bug) is reported and skipped
            message = str(e) if isinstance(e, LungSegError) else f"internal error {type(e).__name__}: {e}"
            errors.append({"case": case, "input": str(path), "error": message})
            print(f"lungseg_batch: case {case} failed: {message}", file=sys.stderr)
            if not isinstance(e, LungSegError):
                traceback.print_exc(limit=4, file=sys.stderr)
    if errors:
        write_text(outdir / "errors.csv", rows_to_csv(errors, ERROR_COLUMNS))
    elif (outdir / "errors.csv").exists():
        (outdir / "errors.csv").unlink()
    print(f"{done} case(s) done, {len(errors)} failed; outputs in {outdir}")
    return 1 if errors else 0


if __name__ == "__main__":
    code = main()
    if in_slicer_app():
        import slicer

        slicer.util.exit(code)
    else:
        sys.exit(code)
