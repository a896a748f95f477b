"""``lungseg`` command line: argument parsing only; the work happens in the rooms it calls.

    lungseg segment INPUT [INPUT ...] -o OUTDIR [--engine auto|hu|ct2d|ct3d|ct2d+ct3d|cxr] [--arch unet|resunet]
                    [--device auto|cpu|cuda] [--threads N]
    lungseg info
    lungseg train ...      (see lungseg train --help)
    lungseg evaluate ...   (see lungseg evaluate --help)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import LungSegError, os_error_message
from .interrupt import INTERRUPTED, terminate_as_interrupt
from .options import POSITIONS, CaseOptions
from .params import ARCHS, DEVICES, ENGINES, Parameters

EXIT_OK, EXIT_CASE_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lungseg", description="Lung segmentation and measurement for chest CT "
                                "and radiographs (labels: 1 = right lung, 2 = left lung).")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("segment", help="segment and measure one or more cases")
    s.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image file, DICOM series folder (FOLDER::SeriesInstanceUID picks one series), or "
                        "folder of cases")
    s.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    s.add_argument("--engine", choices=ENGINES, default="auto",
                   help="auto: cxr for radiographs; for CT the shipped CT model suited to the pixel size with "
                        "the best worst-of validation and external checks, hu if none")
    s.add_argument("--arch", choices=ARCHS, default="auto",
                   help="network architecture; auto = the best-validated shipped model")
    s.add_argument("--device", choices=DEVICES, default="auto")
    s.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = default)")
    s.add_argument("--modality", choices=("auto", "CT", "CXR"), default="auto", help="force the modality")
    s.add_argument("--density", type=float, default=1.0, help="lung tissue density in g/mL for weight_g")
    s.add_argument("--levels", type=int, default=10,
                   help="CT: number of equal-thickness ventral->dorsal levels for regions.csv (default 10)")
    s.add_argument("--position", choices=POSITIONS, default="auto",
                   help="patient position (sets the dependent side); auto: DICOM PatientPosition or direction matrix")
    s.add_argument("--dicom-seg", action="store_true",
                   help="also write lungs.seg.dcm, a DICOM Segmentation referencing the input DICOM series or radiograph")
    s.add_argument("--weights", default="", help="weights file to use instead of the shipped model")
    s.add_argument("--allow-non-hu", action="store_true", help="run CT engines on data not in HU (experts)")
    s.add_argument("--overwrite", action="store_true", help="replace outputs of cases already done")
    s.add_argument("--resume", action="store_true", help="skip cases whose outputs are complete")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("info", help="versions, device and the shipped models")
    sub.add_parser("train", help="train a model (lungseg train --help)", add_help=False)
    sub.add_parser("evaluate", help="evaluate against reference masks (lungseg evaluate --help)", add_help=False)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "evaluate"):  # these own their arguments
        import importlib

        try:
            return importlib.import_module(f"LungSegLib.{argv[0]}").main(argv[1:])
        except LungSegError as e:
            print(f"lungseg {argv[0]}: error: {e}", file=sys.stderr)
            return EXIT_USAGE
    args = build_parser().parse_args(argv)
    try:
        with terminate_as_interrupt():
            if args.command == "info":
                return cmd_info()
            return cmd_segment(args)
    except LungSegError as e:
        print(f"lungseg: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        print(f"lungseg: {INTERRUPTED}", file=sys.stderr)
        return EXIT_CASE_FAILED
    except OSError as e:  # the environment (disk full, folder removed...): one line, no traceback
        print(f"lungseg: error: {os_error_message(e)}", file=sys.stderr)
        return EXIT_CASE_FAILED


def cmd_info() -> int:
    import platform

    import monai
    import numpy
    import SimpleITK
    import torch

    from . import __version__
    from .networks import robustness_dice, selection_dice, shipped_cards, validation_dice

    print(f"lungseg {__version__}  python {platform.python_version()}  torch {torch.__version__}  "
          f"monai {monai.__version__}  SimpleITK {SimpleITK.Version_VersionString()}  numpy {numpy.__version__}")
    cuda = torch.cuda.is_available()
    print(f"device: {'cuda (' + torch.cuda.get_device_name(0) + ')' if cuda else 'cpu'}, "
          f"{torch.get_num_threads()} threads")
    cards = shipped_cards()
    print(f"models ({len(cards)}):" if cards else "models: none shipped (the hu engine needs none)")
    for c in cards:
        metrics = c.get("metrics", {})
        parts = [f"{k} {v}" for k, v in metrics.items() if isinstance(v, (int, float))]
        if val := validation_dice(c):
            parts.append(f"validation Dice {val}")
        if (robust := robustness_dice(c)) is not None:
            parts.append(f"worst pathology family at 25 % Dice {robust}")
        if c.get("task") in ("ct2d", "ct3d", "ct2d+ct3d") and val and not c.get("ensemble_member_of"):
            parts.append(f"auto ranks it by {selection_dice(c):.3f}")
        if c.get("input", {}).get("max_inplane_spacing_mm"):
            parts.append(f"for pixels <= {c['input']['max_inplane_spacing_mm']} mm")
        if members := c.get("members"):
            parts.append("members " + " + ".join(members.values()))
        if c.get("ensemble_member_of"):
            parts.append(f"member of {c['ensemble_member_of']} only")
        summary = ", ".join(parts)
        print(f"  {c['name']:<16} task {c['task']:<5} arch {c.get('arch', '-'):<8} version {c.get('version', '?')}"
              f"{'  [default]' if c.get('default') else ''}  {summary}")
        print(f"  {'':<16} card: {c['card_path']}")
    return EXIT_OK


def _params(args) -> Parameters:
    return Parameters(engine=args.engine, arch=args.arch, device=args.device, threads=args.threads,
                      modality=args.modality, density=args.density, weights=args.weights,
                      allow_non_hu=args.allow_non_hu).validate()


def cmd_segment(args) -> int:
    from .batch import run_batch

    if not str(args.output).strip():
        raise LungSegError("empty output folder (-o ''); expected a folder name")
    params = _params(args)
    options = CaseOptions(levels=args.levels, position=args.position, dicom_seg=args.dicom_seg).validate()
    summary = run_batch(args.inputs, Path(args.output), params, overwrite=args.overwrite, resume=args.resume,
                        show_progress=not args.quiet, options=options)
    print(f"lungseg: {summary['ok']} ok, {summary['skipped']} skipped, {summary['failed']} failed "
          f"-> {args.output}", file=sys.stderr)
    return EXIT_OK if summary["failed"] == 0 else EXIT_CASE_FAILED


if __name__ == "__main__":
    sys.exit(main())
