"""Which Python packages a run needs, what is missing, and a safe plan to install it.

Qt-free and Slicer-free, so the console, the batch script, the panel and the tests share one answer.
Rules (as SlicerTotalSegmentator / MONAIAuto3DSeg do): torch comes from the PyTorch extension
(``PyTorchUtils``: it picks the CUDA build that fits the driver) and is never installed, upgraded or
downgraded by pip; MONAI is pinned to a release whose declared torch requirement the installed torch
meets, and pip runs with a constraints file holding the installed torch version, so a resolver cannot
swap it either.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LungSegError

REQUIREMENTS_FILE = Path(__file__).with_name("requirements.txt")
NETWORK_PACKAGES = ("torch", "monai")          # only the network engines (ct2d, ct3d, cxr) need these
TORCH_MINIMUM = "2.0"                          # the shipped weights load with weights_only=True (torch 2)
# MONAI releases by the lowest torch they accept, from each wheel's Requires-Dist: monai 1.3.x and
# 1.4.0 need torch>=1.9, 1.5.1-1.5.2 torch>=2.4.1 (1.5.0 also torch<2.7), 1.6.x torch>=2.8.0.
MONAI_FOR_TORCH = (("2.8.0", "monai>=1.3,<1.7"), ("2.4.1", "monai>=1.3,<1.6"), (TORCH_MINIMUM, "monai>=1.3,<1.5"))
MONAI_KNOWN_BELOW = "1.7"  # releases from here on are not in the table: trust what pip accepted
IMPORT_NAMES = {"pillow": "PIL", "scikit-image": "skimage", "SimpleITK": "SimpleITK"}
INSTALL_HINT = ("in Slicer run slicer.util.getModuleLogic('LungSeg').installDependencies() or "
                "lungseg_batch.py --install-dependencies; in plain Python install PyTorch (pytorch.org) then "
                "pip install 'monai>=1.3'; or use engine hu, which needs neither")


class MissingDependencyError(LungSegError):
    """A package the chosen engine needs is not installed (or too old); the message says how to fix it."""


def _requirement(text: str):
    from packaging.requirements import Requirement

    return Requirement(text)


def _version(text: str):
    from packaging.version import Version

    return Version(text)


def load_requirements(path: Path = REQUIREMENTS_FILE) -> list:
    """Requirement strings of ``requirements.txt`` (comments and pip options skipped, as slicer.pydeps does)."""
    lines = (line.strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def importable(module: str) -> bool:
    """True when ``import module`` would find it (a hidden or half-removed package counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed_versions(names=None) -> dict:
    """{distribution: version or None}; None when not installed or not importable."""
    names = names or [_requirement(r).name for r in load_requirements()] + ["torch"]
    out = {}
    for name in names:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = None
        out[name] = version if version and importable(IMPORT_NAMES.get(name, name)) else None
    return out


def monai_requirement(torch_version: str | None) -> str:
    """The MONAI range whose releases accept this torch (None: torch not installed yet: any supported)."""
    if torch_version is None:
        return MONAI_FOR_TORCH[0][1]
    v = _version(torch_version)
    for lowest, requirement in MONAI_FOR_TORCH:
        if v.release >= _version(lowest).release:
            return requirement
    raise MissingDependencyError(f"PyTorch {torch_version} is older than LungSeg needs (>= {TORCH_MINIMUM})")


def monai_fits(monai_version: str, torch_version: str | None) -> bool:
    """An installed MONAI can run with this torch: >= 1.3, and not a release the table knows needs a newer
    torch (e.g. 1.6 with torch 2.1, left behind when torch was replaced)."""
    v = _version(monai_version)
    if v.release < _version("1.3").release:
        return False
    if torch_version is None or v.release >= _version(MONAI_KNOWN_BELOW).release:
        return True
    return _requirement(monai_requirement(torch_version)).specifier.contains(monai_version, prereleases=True)


@dataclass
class Plan:
    """What to install. ``torch``: a version requirement for PyTorchUtils ('' = keep the installed torch);
    ``pip``: requirement strings for pip (never torch); ``constraints``: lines of a pip constraints file
    that pin the installed torch; ``restart``: already imported packages the plan replaces (Slicer must
    restart to use them)."""
    torch: str = ""
    torch_installed: str | None = None
    pip: list = field(default_factory=list)
    constraints: list = field(default_factory=list)
    restart: list = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.torch and not self.pip

    def summary(self) -> str:
        parts = []
        if self.torch:
            now = f" (installed {self.torch_installed} is too old)" if self.torch_installed else ""
            parts.append(f"PyTorch {self.torch} through the PyTorch extension{now}")
        if self.pip:
            parts.append("pip install " + " ".join(self.pip))
        if self.restart:
            parts.append("then restart Slicer (already loaded: " + ", ".join(self.restart) + ")")
        return "; ".join(parts) or "nothing to install"


def plan_dependencies(installed: dict, network: bool = True, loaded=()) -> Plan:
    """The install plan for ``installed`` ({distribution: version or None}) when a run needs the base
    packages (+ torch and MONAI when ``network``). ``loaded``: names of modules already imported."""
    plan = Plan(torch_installed=installed.get("torch"))
    torch_version = installed.get("torch")
    for text in load_requirements():
        requirement = _requirement(text)
        if requirement.name in NETWORK_PACKAGES:
            continue
        have = installed.get(requirement.name)
        if have is None or not requirement.specifier.contains(have, prereleases=True):
            plan.pip.append(text)
    if network:
        if torch_version is None or _version(torch_version).release < _version(TORCH_MINIMUM).release:
            plan.torch = f">={TORCH_MINIMUM}"
            torch_version = None  # MONAI is fitted again once PyTorchUtils has installed torch
        have = installed.get("monai")
        if have is None or not monai_fits(have, torch_version):
            plan.pip.append(str(_requirement(monai_requirement(torch_version))))
        if torch_version is not None:
            plan.constraints.append(f"torch=={torch_version}")
    replaced = [_requirement(r).name for r in plan.pip] + (["torch"] if plan.torch else [])
    plan.restart = [name for name in replaced if installed.get(name) is not None
                    and IMPORT_NAMES.get(name, name) in loaded]
    return plan


def missing_for(engine: str, installed: dict | None = None) -> list:
    """Distributions the engine cannot run without (absent, or torch/MONAI too old or mismatched)."""
    if engine == "hu":
        return []
    installed = installed if installed is not None else installed_versions(list(NETWORK_PACKAGES))
    plan = plan_dependencies(installed, network=True)
    names = (["torch"] if plan.torch else []) + [_requirement(r).name for r in plan.pip]
    return [name for name in NETWORK_PACKAGES if name in names]


def require_for(engine: str) -> None:
    """Raise :class:`MissingDependencyError` (one line, how to fix) when the engine's packages are missing."""
    missing = missing_for(engine)
    if missing:
        versions = installed_versions(list(NETWORK_PACKAGES))
        what = ", ".join(f"{name} {versions[name]} (needs {_need(name, versions)})" if versions.get(name)
                         else f"{name} (not installed)" for name in missing)
        raise MissingDependencyError(f"engine {engine} needs {what}: {INSTALL_HINT}")


def _need(name: str, versions: dict) -> str:
    return f">={TORCH_MINIMUM}" if name == "torch" else monai_requirement(versions.get("torch"))[len(name):]


def install(network: bool, install_torch=None, install_pip=None, log=print) -> Plan:
    """Carry out the plan: torch through ``install_torch(requirement)`` (PyTorchUtils), then the pip part
    through ``install_pip(requirements, constraints_path)``, with MONAI fitted to the torch now present.
    Without ``install_torch`` a missing torch is an error that says where to get it."""
    import tempfile

    plan = plan_dependencies(installed_versions(), network, loaded=set(sys.modules))
    replaced = list(plan.restart)  # loaded packages this install replaces (torch included)
    if plan.torch:
        if install_torch is None:
            raise MissingDependencyError(f"PyTorch {plan.torch} is not installed and LungSeg does not install it "
                                         "with pip: install the build for your machine from pytorch.org (or the "
                                         "PyTorch extension inside Slicer), then run this again")
        log(f"LungSeg: installing PyTorch {plan.torch} through the PyTorch extension")
        install_torch(plan.torch)
        plan = plan_dependencies(installed_versions(), network, loaded=set(sys.modules))
        if plan.torch:
            raise MissingDependencyError(f"PyTorch {plan.torch} is still missing after installing it; see the log")
    if plan.pip:
        log(f"LungSeg: {plan.summary()}")
        with tempfile.TemporaryDirectory(prefix="lungseg-deps-") as tmp:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text("".join(line + "\n" for line in plan.constraints))
            install_pip(plan.pip, constraints)
    plan.restart = sorted(set(replaced) | set(plan.restart))
    return plan


def pip_install(requirements: list, constraints: Path) -> None:
    """Plain Python (no Slicer): ``python -m pip install`` with the constraints file; one-line error."""
    import subprocess

    command = [sys.executable, "-m", "pip", "install", *requirements, "-c", str(constraints)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise LungSegError(f"pip install {' '.join(requirements)} failed: {last}")
