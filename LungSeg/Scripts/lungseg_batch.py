#!/usr/bin/env python
"""Headless LungSeg batch: segment every case under --input and save Slicer files per case.

    python LungSeg/Scripts/lungseg_batch.py --input CASES --output OUT [--engine hu] [--arch unet] [--device cpu]
    Slicer --no-main-window --python-script LungSeg/Scripts/lungseg_batch.py -- --input CASES --output OUT

Each case (a file, a DICOM series folder, or a folder of those) is loaded into an MRML scene, segmented
by the same logic as the module, and saved as OUT/<case>/lungs.seg.nrrd (segmentation storage node) and
OUT/<case>/measurements.csv (table storage node, with measurements.schema.csv holding the units), beside
the files ``lungseg segment`` writes (measurements.json, label map, overlay): OUTDIR follows the one
contract of LungSegLib/outdir.py (same lock, case folders written whole and renamed, --overwrite /
--resume, OUT/measurements.csv and OUT/errors.csv for every case). Failed cases are reported on stderr and
in OUT/errors.csv and skipped; the exit status is 1 when any case failed, 2 for bad arguments.
"""

import argparse
import sys
from dataclasses import fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if (REPO_ROOT / "LungSegLib" / "__init__.py").is_file():  # repo checkout; inside Slicer it is on sys.path
    sys.path.insert(0, str(REPO_ROOT))

from LungSegLib.errors import LungSegError, os_error_message  # noqa: E402
from LungSegLib.batch import run_batch  # noqa: E402
from LungSegLib.interrupt import INTERRUPTED, terminate_as_interrupt  # noqa: E402
from LungSegLib.report import write_case  # noqa: E402
from LungSegLib.mrml import get_scene, in_slicer_app  # noqa: E402
from LungSegLib.mrml_io import load_volume, save_segmentation, save_table, segment_volume_node  # noqa: E402
from LungSegLib.params import ARCHS, DEVICES, ENGINES, MODALITIES, Parameters  # noqa: E402

CHOICES = {"engine": ENGINES, "arch": ARCHS, "device": DEVICES, "modality": MODALITIES}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="lungseg_batch.py", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, nargs="+", help="image file(s), DICOM folder(s) or folder(s) of cases")
    parser.add_argument("--output", required=True, help="output folder (one sub-folder per case)")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs of cases already done")
    parser.add_argument("--resume", action="store_true", help="skip cases whose outputs are complete")
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


def slicer_case(scene):
    """The batch runner's per-case step done through MRML: load, segment, then (into the case's temporary
    folder) the files ``lungseg segment`` writes plus Slicer's own segmentation and table files."""
    def run(case: str, path, params: Parameters, progress=None):
        scene.Clear(0)
        volume = load_volume(Path(str(path)), scene, case, params.modality)
        segmentation, table, result = segment_volume_node(volume, params)
        result.image.meta["source"] = str(path)  # the case folder records its input (stable names, --resume)

        def write(folder: Path) -> dict:
            report = write_case(result, case, folder)
            save_segmentation(segmentation, folder / "lungs.seg.nrrd")
            save_table(table, folder / "measurements.csv")
            both = result.measurements["structures"]["both"]
            size = f"{both['volume_ml']:.0f} mL" if "volume_ml" in both else f"{both.get('pixel_count')} pixels"
            flags = f" (QC: {', '.join(result.qc.get('flags', []))})" if result.qc.get("flags") else ""
            print(f"{case}: ok, engine {result.engine}, both lungs {size}{flags}")
            return report
        return write
    return run


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    params = Parameters(**{f.name: getattr(args, f.name) for f in fields(Parameters)})
    try:
        params.validate()
        with terminate_as_interrupt():
            summary = run_batch(args.input, Path(args.output), params, overwrite=args.overwrite,
                                resume=args.resume, show_progress=False, case_writer=slicer_case(get_scene(None)))
    except KeyboardInterrupt:
        print(f"lungseg_batch: {INTERRUPTED}", file=sys.stderr)
        return 1
    except LungSegError as e:
        print(f"lungseg_batch: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"lungseg_batch: {os_error_message(e)}", file=sys.stderr)
        return 1
    print(f"{summary['ok']} case(s) done, {summary['skipped']} skipped, {summary['failed']} failed; "
          f"outputs in {args.output}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    code = main()
    if in_slicer_app():
        import slicer

        slicer.util.exit(code)
    else:
        sys.exit(code)
