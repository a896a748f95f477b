#!/usr/bin/env python
"""Headless LungSeg batch: segment every case under --input and save Slicer files per case.

    python LungSeg/Scripts/lungseg_batch.py --input CASES --output OUT [--engine hu] [--arch unet] [--device cpu]
        [--levels N] [--position auto|supine|prone] [--dicom-seg]
    Slicer --no-main-window --python-script <LungSeg>/Scripts/lungseg_batch.py --input CASES --output OUT
    Slicer --no-main-window --python-script <LungSeg>/Scripts/lungseg_batch.py --install-dependencies

Each case (a file, a DICOM series folder, FOLDER::SeriesInstanceUID, or a folder of those) is loaded into
an MRML scene, segmented by the same logic as the module, and saved as OUT/<case>/lungs.seg.nrrd
(segmentation storage node) and OUT/<case>/measurements.csv (table storage node, with
measurements.schema.csv holding the units), beside the files ``lungseg segment`` writes (measurements.json,
label map, overlay.png, report.png): OUTDIR follows the one contract of LungSegLib/outdir.py (same lock, case
folders written whole and renamed, --overwrite / --resume, OUT/measurements.csv, OUT/errors.csv,
OUT/regions.csv and OUT/index.html for every case).
Failed cases are reported on stderr (one line each) and in OUT/errors.csv and skipped. Exit status: 0 all
cases done, 1 some case failed or the run was interrupted (Ctrl-C, SIGTERM), 2 bad usage (options,
unwritable output, missing packages, OUTDIR held by another run); Slicer always exits.
"""

import argparse
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if (REPO_ROOT / "LungSegLib" / "__init__.py").is_file():  # repo checkout; inside Slicer it is on sys.path
    sys.path.insert(0, str(REPO_ROOT))

EXIT_OK, EXIT_CASE_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "lungseg_batch"


class UsageError(Exception):
    """Bad options or environment: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise UsageError(f"{message} (see --help)")


def parse_args(argv):
    from LungSegLib.options import POSITIONS
    from LungSegLib.params import ARCHS, DEVICES, ENGINES, MODALITIES, Parameters

    choices = {"engine": ENGINES, "arch": ARCHS, "device": DEVICES, "modality": MODALITIES}
    parser = Parser(prog="lungseg_batch.py", description=__doc__.split("\n")[0])
    parser.add_argument("--input", nargs="+", help="image file(s), DICOM folder(s) (FOLDER::SeriesInstanceUID "
                        "picks one series) or folder(s) of cases")
    parser.add_argument("--output", help="output folder (one sub-folder per case)")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs of cases already done")
    parser.add_argument("--resume", action="store_true", help="skip cases whose outputs are complete")
    parser.add_argument("--install-dependencies", action="store_true",
                        help="install the Python packages the network engines need (torch through the PyTorch "
                             "extension inside Slicer), then exit")
    for f in fields(Parameters):  # every Parameters field is an option, with the same name
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, action="store_true", help=f"(default {f.default})")
        else:
            kind = {"int": int, "float": float}.get(str(f.type), type(f.default))
            parser.add_argument(flag, type=kind, default=f.default, choices=choices.get(f.name),
                                help=f"(default {f.default!r})")
    parser.add_argument("--levels", type=int, default=10, help="ventral->dorsal levels of the regional CT "
                        "measurements (1-100, default 10)")
    parser.add_argument("--position", choices=POSITIONS, default="auto", help="patient position (sets the "
                        "dependent side); auto: DICOM PatientPosition or direction matrix")
    parser.add_argument("--dicom-seg", action="store_true", help="also write lungs.seg.dcm (DICOM Segmentation "
                        "referencing the source instances) for a DICOM CT series or a CR/DX radiograph")
    if argv and argv[0] == "--":  # Slicer may pass the separator through
        argv = argv[1:]
    args = parser.parse_args(argv)
    if not args.install_dependencies and not (args.input and args.output):
        raise UsageError("--input and --output are required (see --help)")
    return args


def in_slicer() -> bool:
    return getattr(sys.modules.get("slicer"), "app", None) is not None


def install_dependencies(engine: str) -> int:
    from LungSegLib import dependencies

    network = engine != "hu"
    if in_slicer():
        import slicer

        plan = slicer.util.getModuleLogic("LungSeg").installDependencies(network=network, askConfirmation=False)
    else:
        plan = dependencies.install(network, install_torch=None, install_pip=dependencies.pip_install,
                                    log=lambda m: print(m, file=sys.stderr))
    restart = f"; restart to use the new {', '.join(plan.restart)}" if plan.restart else ""
    print(f"{PROG}: dependencies ready ({plan.summary()}){restart}")
    return EXIT_OK


def writable_folder(path: Path) -> Path:
    """Create ``path`` and prove a file can be written there, or raise UsageError (one line)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UsageError(f"--output {path}: cannot write there ({e.strerror or e})") from None
    return path


def slicer_case(scene, options=None):
    """The batch runner's per-case step done through MRML: load, segment (``options``: the regional levels
    and position, :class:`LungSegLib.options.CaseOptions`), then (into the case's temporary folder) the files
    ``lungseg segment`` writes plus Slicer's own segmentation and table files."""
    from LungSegLib.mrml_io import load_volume, save_segmentation, save_table, segment_volume_node
    from LungSegLib.report import write_case

    def run(case: str, path, params, progress=None):
        scene.Clear(0)
        volume = load_volume(path, scene, case, params.modality)  # FOLDER::UID kept whole
        segmentation, table, result = segment_volume_node(volume, params, options=options)
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
    from LungSegLib.batch import run_batch
    from LungSegLib.dependencies import require_for
    from LungSegLib.errors import LungSegError, os_error_message
    from LungSegLib.interrupt import INTERRUPTED, terminate_as_interrupt
    from LungSegLib.mrml import get_scene
    from LungSegLib.options import CaseOptions
    from LungSegLib.params import Parameters

    args = parse_args(sys.argv[1:] if argv is None else argv)
    params = Parameters(**{f.name: getattr(args, f.name) for f in fields(Parameters)})
    try:
        params.validate()
        options = CaseOptions(levels=args.levels, position=args.position, dicom_seg=args.dicom_seg).validate()
        if args.install_dependencies:
            return install_dependencies(params.engine)
        require_for(params.engine)  # before any case: one line saying how to install torch/MONAI
        outdir = writable_folder(Path(args.output))
        with terminate_as_interrupt():  # the OUTDIR contract of lungseg segment (lock, case folders, summaries)
            summary = run_batch(args.input, outdir, params, overwrite=args.overwrite, resume=args.resume,
                                show_progress=False, case_writer=slicer_case(get_scene(None), options), prog=PROG,
                                tracebacks=False)
    except LungSegError as e:  # bad parameters, OUTDIR held by another run or refused
        raise UsageError(str(e)) from None
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: the unfinished case left nothing
        print(f"{PROG}: {INTERRUPTED}", file=sys.stderr)
        return EXIT_CASE_FAILED
    except OSError as e:  # disk full, folder removed...: one line
        print(f"{PROG}: error: {os_error_message(e)}", file=sys.stderr)
        return EXIT_CASE_FAILED
    print(f"{summary['ok']} case(s) done, {summary['skipped']} skipped, {summary['failed']} failed; "
          f"outputs in {outdir}")
    return EXIT_CASE_FAILED if summary["failed"] else EXIT_OK


def run(argv=None) -> int:
    """main() with every way out turned into an exit status and at most one line on stderr."""
    try:
        return main(argv)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_CASE_FAILED
    except Exception as e:  # an import failure or a bug outside the case loop
        kind = "missing package" if isinstance(e, ImportError) else f"internal error {type(e).__name__}"
        print(f"{PROG}: {kind}: {e}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, ImportError) else EXIT_CASE_FAILED


if __name__ == "__main__":
    code = EXIT_CASE_FAILED
    try:
        code = run()
    finally:  # Slicer does not exit by itself after --python-script
        if in_slicer():
            import slicer

            slicer.util.exit(code)
        else:
            sys.exit(code)
