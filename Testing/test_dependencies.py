"""LungSegLib.dependencies: the install plan never changes torch through pip, MONAI fits the installed torch,
and with torch/MONAI hidden (a sitecustomize in a subprocess, as in a fresh Slicer) the console, the batch
script and the CLI say in one line what to install, with no ModuleNotFoundError traceback."""

import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO, SAMPLES
from LungSegLib import dependencies as deps

BASE = {"numpy": "2.1", "scipy": "1.14", "SimpleITK": "2.4.0", "nibabel": "5.3", "pydicom": "3.0.1", "pillow": "11",
        "scikit-image": "0.25", "slicerio": "1.4.0", "tqdm": "4.67", "packaging": "24",
        "matplotlib": "3.9", "highdicom": "0.28"}
HIDE = """import sys
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "monai"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Hide())
"""


def monai_versions_allowed(requirement: str) -> list:
    released = ["1.2.0", "1.3.0", "1.3.2", "1.4.0", "1.5.0", "1.5.2", "1.6.0", "1.6.1"]
    return [v for v in released if Requirement(requirement).specifier.contains(v)]


@pytest.mark.parametrize("torch, monai, expect_torch, expect_monai", [
    (None, None, ">=2.0", ["1.3.0", "1.3.2", "1.4.0", "1.5.0", "1.5.2", "1.6.0", "1.6.1"]),  # refitted after torch
    ("2.1.2+cu121", None, "", ["1.3.0", "1.3.2", "1.4.0"]),        # monai 1.5+ would pull torch >= 2.4.1
    ("2.1.0", "1.2.0", "", ["1.3.0", "1.3.2", "1.4.0"]),           # monai old: upgrade within what fits torch
    ("2.5.1+cu124", None, "", ["1.3.0", "1.3.2", "1.4.0", "1.5.0", "1.5.2"]),  # 1.6 needs torch >= 2.8
    ("2.8.0", None, "", ["1.3.0", "1.3.2", "1.4.0", "1.5.0", "1.5.2", "1.6.0", "1.6.1"]),
    ("2.8.0", "1.6.1", "", None),                                  # all there: nothing for monai
    ("1.13.1", "1.1.0", ">=2.0", ["1.3.0", "1.3.2", "1.4.0", "1.5.0", "1.5.2", "1.6.0", "1.6.1"]),
])
def test_plan_never_touches_torch_through_pip(torch, monai, expect_torch, expect_monai):
    plan = deps.plan_dependencies({**BASE, "torch": torch, "monai": monai}, network=True, loaded={"monai", "torch"})
    assert plan.torch == expect_torch  # torch only ever through PyTorchUtils, with this requirement
    assert not any(Requirement(r).name == "torch" for r in plan.pip)
    monai_lines = [r for r in plan.pip if Requirement(r).name == "monai"]
    if expect_monai is None:
        assert monai_lines == []
    else:
        assert len(monai_lines) == 1 and monai_versions_allowed(monai_lines[0]) == expect_monai
    if torch and not expect_torch:  # pip runs with the installed torch pinned
        assert plan.constraints == [f"torch=={torch}"] and Requirement(plan.constraints[0]).specifier.contains(torch)
    assert set(plan.restart) == ({"monai"} if monai and monai_lines else set()) | ({"torch"} if torch and expect_torch else set())


def test_monai_ranges_match_what_each_monai_release_declares():
    # Requires-Dist of the monai wheels: 1.4.0 torch>=1.9, 1.5.2 torch>=2.4.1, 1.6.x torch>=2.8.0
    declared = {"1.4.0": "1.9", "1.5.2": "2.4.1", "1.6.1": "2.8.0"}
    for torch in ("2.0.0", "2.3.1", "2.4.1", "2.7.1", "2.8.0", "2.13.0+cpu"):
        for monai in monai_versions_allowed(deps.monai_requirement(torch)):
            if monai in declared:
                assert Version(torch).release >= Version(declared[monai]).release, (torch, monai)


def test_hu_engine_needs_no_network_packages():
    assert deps.missing_for("hu", {"torch": None, "monai": None}) == []
    assert deps.missing_for("ct3d", {"torch": None, "monai": None}) == ["torch", "monai"]
    assert deps.missing_for("cxr", {"torch": "2.1.0", "monai": "1.6.1"}) == ["monai"]  # monai too new for torch
    plan = deps.plan_dependencies({**BASE, "torch": None, "monai": None}, network=False)
    assert plan.empty and plan.summary() == "nothing to install"


def test_requirement_strings_parse_and_agree_with_pyproject():
    lines = deps.load_requirements()
    names = {Requirement(line).name.lower() for line in lines}  # raises on an unparseable line
    assert "torch" not in names and "monai" in names
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {Requirement(r).name.lower() for r in pyproject}
    assert names == declared - {"torch"}, "requirements.txt (Slicer) and pyproject.toml (pip) list different packages"
    for version in ("2.0", "2.4.1", "2.8.0", None):
        Requirement(deps.monai_requirement(version))
    summary = deps.plan_dependencies({"torch": None}, network=True).summary()
    assert "PyTorch >=2.0 through the PyTorch extension" in summary and "pip install" in summary


def test_install_runs_pytorchutils_first_then_pip_with_torch_pinned(monkeypatch):
    state = {"torch": None, "monai": None}
    calls = []
    monkeypatch.setattr(deps, "installed_versions", lambda names=None: {**BASE, **state})

    def install_torch(requirement):  # stands for PyTorchUtils.installTorch: torch 2.5.1 fits this driver
        calls.append(("torch", requirement))
        state["torch"] = "2.5.1+cu124"

    def install_pip(requirements, constraints):
        calls.append(("pip", requirements, constraints.read_text()))

    deps.install(True, install_torch, install_pip, log=lambda m: None)
    assert calls[0] == ("torch", ">=2.0")
    _, requirements, constraints = calls[1]
    assert monai_versions_allowed(requirements[0]) == ["1.3.0", "1.3.2", "1.4.0", "1.5.0", "1.5.2"]  # fitted to 2.5.1
    assert constraints == "torch==2.5.1+cu124\n"
    state["torch"] = None
    with pytest.raises(deps.MissingDependencyError, match="does not install it with pip"):
        deps.install(True, None, install_pip, log=lambda m: None)


@pytest.fixture()
def hidden_env(tmp_path):
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(HIDE)
    return {"PYTHONPATH": f"{tmp_path / 'hide'}:{REPO}", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}


def run_hidden(env, *args, cwd):
    return subprocess.run([sys.executable, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_hidden_torch_is_really_hidden(hidden_env, tmp_path):
    proc = run_hidden(hidden_env, "-c", "import torch", cwd=tmp_path)
    assert proc.returncode == 1 and "No module named 'torch'" in proc.stderr


def test_batch_without_torch_says_how_to_install_and_hu_still_runs(hidden_env, tmp_path):
    script = REPO / "LungSeg" / "Scripts" / "lungseg_batch.py"
    proc = run_hidden(hidden_env, script, "--input", SAMPLES / "ct-64.nrrd", "--output", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "ModuleNotFoundError" not in proc.stderr
    assert "engine auto needs torch (not installed), monai (not installed)" in lines[0]
    assert "lungseg_batch.py --install-dependencies" in lines[0] and "installDependencies()" in lines[0]
    proc = run_hidden(hidden_env, script, "--install-dependencies", cwd=tmp_path)  # never pip-installs torch
    assert proc.returncode == 2 and "does not install it with pip" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_hidden(hidden_env, script, "--input", SAMPLES / "ct-64.nrrd", "--output", tmp_path / "hu",
                      "--engine", "hu", "--threads", "2", cwd=tmp_path)  # threads > 0 must not import torch for hu
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "hu" / "ct-64" / "lungs.seg.nrrd").exists()


def test_cli_without_torch_fails_each_network_case_in_one_line(hidden_env, tmp_path):
    proc = run_hidden(hidden_env, "-m", "LungSegLib.cli", "segment", SAMPLES / "ct-64.nrrd", "-o", tmp_path / "out",
                      "--engine", "ct2d", "--quiet", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "engine ct2d needs torch (not installed)" in proc.stderr


CONSOLE = """
import sys, importlib.util
sys.path[:0] = [{testing!r}]
import slicer
from test_slicer_module import slicer_python_layer
from LungSegLib import mrml
from LungSegLib.phantom import chest_phantom
scene = mrml.new_scene()
sys.modules.update(slicer_python_layer(scene))
slicer.mrmlScene = scene
spec = importlib.util.spec_from_file_location("LungSeg", {module!r})
lungseg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lungseg)
volume = mrml.image_to_volume_node(chest_phantom(shape=(24, 32, 32), spacing=(4.0, 4.0, 4.0))[0], scene, "ct")
logic = lungseg.LungSegLogic()
print("missing", logic.missingPackages(dict(engine="auto"), volume), logic.missingPackages(dict(engine="hu"), volume))
logic.run(volume, engine="hu", threads=3)
print("hu ok", "torch" in sys.modules)
logic.run(volume, engine="auto")
"""


def test_console_run_without_torch_raises_one_actionable_line(hidden_env, tmp_path):
    pytest.importorskip("slicer", reason="slicer-core is not installed")
    code = CONSOLE.format(testing=str(REPO / "Testing"), module=str(REPO / "LungSeg" / "LungSeg.py"))
    proc = run_hidden(hidden_env, "-c", code, cwd=tmp_path)
    assert "missing ['torch', 'monai'] []" in proc.stdout and "hu ok False" in proc.stdout, proc.stderr
    assert proc.returncode == 1 and "ModuleNotFoundError" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    # auto's CT network engine for this volume: ct2d+ct3d (fine pixels) or ct3d
    assert re.match(r"LungSegLib\.dependencies\.MissingDependencyError: engine (ct3d|ct2d\+ct3d) needs torch "
                    r"\(not installed\)", last), last
    assert "installDependencies()" in last
    assert proc.stderr.count('  File "') <= 3  # raised by LungSegLogic.run itself, not deep in an engine


def test_install_remembers_a_replaced_loaded_torch_for_the_restart_prompt(monkeypatch):
    state = {"torch": "1.13.1", "monai": "1.2.0"}
    monkeypatch.setattr(deps, "installed_versions", lambda names=None: {**BASE, **state})
    monkeypatch.setitem(deps.sys.modules, "torch", deps.sys.modules.get("torch", object()))
    monkeypatch.setitem(deps.sys.modules, "monai", deps.sys.modules.get("monai", object()))

    def install_torch(requirement):
        state["torch"] = "2.8.0"

    done = deps.install(True, install_torch, lambda requirements, constraints: None, log=lambda m: None)
    assert done.restart == ["monai", "torch"] and done.constraints == ["torch==2.8.0"]


def test_a_newer_monai_than_the_table_knows_is_trusted_not_downgraded():
    assert deps.monai_fits("1.7.0", "2.9.0") and deps.monai_fits("1.6.1", "2.13.0+cpu")
    assert not deps.monai_fits("1.6.1", "2.1.0") and not deps.monai_fits("1.2.0", "2.8.0")
    assert deps.missing_for("ct3d", {"torch": "2.9.0", "monai": "1.7.0"}) == []
    assert deps.plan_dependencies({**BASE, "torch": "2.9.0", "monai": "1.7.0"}).empty
