"""The two installers :func:`LungSegLib.dependencies.install` calls inside Slicer (no Qt): torch through the
PyTorch extension's ``PyTorchUtils`` (it picks the CUDA build that fits the driver), everything else
through ``slicer.pydeps.pip_ensure`` (Slicer >= 5.11) or ``slicer.util.pip_install``, with a constraints
file that pins the installed torch."""

from __future__ import annotations

from .errors import LungSegError


def install_torch(requirement: str) -> None:
    try:
        import PyTorchUtils
    except ImportError:
        raise LungSegError("PyTorch is missing: install the 'PyTorch' extension from the Extensions Manager, "
                           "restart Slicer and run this again") from None
    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=requirement) is None:
        raise LungSegError("PyTorch was not installed; see the Python console for details")


def install_pip(requirements: list, constraints) -> None:
    import slicer

    try:
        import slicer.pydeps as pydeps
        from packaging.requirements import Requirement
    except ImportError:  # Slicer < 5.11
        pydeps = None
    if pydeps is not None and hasattr(pydeps, "pip_ensure"):  # the caller asked the user once already
        pydeps.pip_ensure([Requirement(r) for r in requirements], constraints=str(constraints),
                          prompt_install=False, prompt_restart=False, requester="LungSeg")
    else:
        slicer.util.pip_install([*requirements, "-c", str(constraints)])
