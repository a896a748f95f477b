"""LungSeg/LungSeg.py's Logic and its built-in LungSegTest (from LungSegModuleLib) against real MRML (slicer-core).

slicer-core has no Slicer *Python layer* (ScriptedLoadableModule, parameterNodeWrapper, the app's
scene singleton), so minimal stand-ins for exactly those are installed for the import; every MRML
class stays real. The widget needs Qt/PythonQt and is covered by test_ui.py and by reading.
"""

import importlib.util
import pathlib
import sys
import types
import unittest
from types import SimpleNamespace

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")

from conftest import REPO  # noqa: E402
from LungSegLib import mrml  # noqa: E402
from LungSegLib.params import Parameters  # noqa: E402
from LungSegLib.phantom import chest_phantom  # noqa: E402


def slicer_python_layer(scene):
    """Stand-ins for the parts of Slicer's Python layer that slicer-core does not ship."""
    slm = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def getParameterNode(self):
            return scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "LungSeg")

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):
            print(message)

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(slm, cls.__name__, cls)
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper = lambda cls: cls
    pnw.WithinRange = lambda lo, hi: ("WithinRange", lo, hi)
    i18n = types.ModuleType("slicer.i18n")  # Slicer's tr/translate look the text up in the loaded .qm files
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    qt = types.ModuleType("qt")  # PythonQt: only the widget uses it, and the widget is not run here
    return {"slicer.ScriptedLoadableModule": slm, "slicer.parameterNodeWrapper": pnw, "slicer.i18n": i18n, "qt": qt}


@pytest.fixture()
def module(monkeypatch):
    scene = mrml.new_scene()
    for name, stand_in in slicer_python_layer(scene).items():
        monkeypatch.setitem(sys.modules, name, stand_in)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    for name in [n for n in sys.modules if n.split(".")[0] == "LungSegModuleLib"]:
        monkeypatch.delitem(sys.modules, name)  # re-import against this test's stand-ins and scene
    spec = importlib.util.spec_from_file_location("LungSeg", REPO / "LungSeg" / "LungSeg.py")
    lungseg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lungseg)
    return lungseg, scene


def test_logic_run_returns_segmentation_and_table(module):
    lungseg, scene = module
    image, truth, volume_ml = chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))
    volume = mrml.image_to_volume_node(image, scene, "phantom")
    logic = lungseg.LungSegLogic()
    steps = []
    segmentation, table = logic.run(volume, engine="hu", density=1.05, progress=lambda f, m: steps.append((f, m)))
    assert segmentation.IsA("vtkMRMLSegmentationNode") and table.IsA("vtkMRMLTableNode")
    assert segmentation.GetScene() is scene and steps[-1] == (1.0, "done")
    assert np.array_equal(mrml.segmentation_to_labels(segmentation, volume), logic.lastResult.labels.array)
    assert logic.lastResult.measurements["method"]["density_g_per_ml"] == 1.05
    again = logic.run(volume, engine="hu", segmentationNode=segmentation, tableNode=table)
    assert again == (segmentation, table)


def test_builtin_slicer_self_test_passes_offline(module):
    lungseg, _ = module
    result = unittest.TextTestRunner(stream=open("/dev/null", "w")).run(lungseg.LungSegTest("runTest"))
    assert result.wasSuccessful(), result.errors + result.failures


def parameter_node(lungseg, volume, **changes):
    values = dict(inputVolume=volume, engine=lungseg.Engine.auto, arch=lungseg.Arch.auto, device=lungseg.Device.auto,
                  threads=0, modality=lungseg.Modality.auto, density=1.0, weights=pathlib.Path(""),
                  allow_non_hu=False, batch_size=16, levels=10, position=lungseg.Position.auto,
                  outputSegmentation=None, outputTable=None)
    values.update(changes)
    return SimpleNamespace(**values)


def test_parameter_node_maps_onto_lungseglib_parameters(module):
    lungseg, _ = module
    p = parameter_node(lungseg, None, engine=lungseg.Engine.ct3d, weights=pathlib.Path("/m/w.pt"), threads=3)
    params = Parameters(**lungseg.LungSegLogic.parametersFromNode(p)).validate()
    assert (params.engine, params.weights, params.threads) == ("ct3d", "/m/w.pt", 3)
    assert Parameters(**lungseg.LungSegLogic.parametersFromNode(parameter_node(lungseg, None))).weights == ""


def test_panel_regional_options_reach_the_regions_table_in_process_and_in_the_background(module):
    from LungSegLib.background import RUNNING
    from LungSegLib.mrml_regions import REGIONS_TABLE_ATTRIBUTE

    lungseg, scene = module
    volume = mrml.image_to_volume_node(chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))[0], scene, "ph")
    logic = lungseg.LungSegLogic()
    p = parameter_node(lungseg, volume, engine=lungseg.Engine.hu, levels=4, position=lungseg.Position.prone)
    options = logic.optionsFromNode(p)
    assert options == {"levels": 4, "position": "prone"}

    def regions_of(table):
        regions = scene.GetNodeByID(table.GetAttribute(REGIONS_TABLE_ATTRIBUTE))
        return regions.GetTable().GetNumberOfRows(), regions.GetAttribute("LungSeg.position")

    _, table = logic.run(volume, engine="hu", **options)
    assert regions_of(table) == (3 * (4 + 3), "prone")  # 3 structures x (4 levels + 3 thirds)
    run = logic.startBackgroundRun(volume, logic.parametersFromNode(p), options)
    while run.poll() == RUNNING:
        run.wait(300)
    _, background_table = logic.loadResult(run, volume)
    assert regions_of(background_table) == (3 * (4 + 3), "prone")
    assert regions_of(logic.run(volume, engine="hu")[1]) == (3 * (10 + 3), "supine")  # defaults


def test_apply_is_blocked_with_a_reason_for_invalid_inputs(module):
    lungseg, scene = module
    logic = lungseg.LungSegLogic()
    assert "Select an input volume" in logic.inputProblem(parameter_node(lungseg, None))
    cxr = mrml.image_to_volume_node(mrml.Image(np.random.rand(64, 64).astype(np.float32), spacing=(1.0, 1.0),
                                               origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0), modality="CXR"),
                                    scene, "cxr")
    assert "needs a CT volume" in logic.inputProblem(parameter_node(lungseg, cxr, engine=lungseg.Engine.hu))
    assert logic.inputProblem(parameter_node(lungseg, cxr)) == ""  # auto -> radiograph model
    ct = mrml.image_to_volume_node(chest_phantom(shape=(16, 32, 32), spacing=(4.0, 4.0, 4.0))[0], scene, "ct")
    assert "needs a radiograph" in logic.inputProblem(parameter_node(lungseg, ct, engine=lungseg.Engine.cxr))
    assert logic.inputProblem(parameter_node(lungseg, ct, engine=lungseg.Engine.hu)) == ""


def test_missing_packages_only_lists_what_the_engine_needs(module, monkeypatch):
    lungseg, _ = module
    logic = lungseg.LungSegLogic()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "monai") else real_find_spec(name, *a))
    hu = Parameters(engine="hu").to_dict()
    assert logic.missingPackages(hu) == []
    assert logic.missingPackages(Parameters(engine="cxr").to_dict()) == ["torch", "monai"]
    plan = logic.dependencyPlan(Parameters(engine="cxr").to_dict())
    assert plan.torch == ">=2.0" and plan.pip == ["monai<1.7,>=1.3"] and not plan.constraints


def test_background_run_through_the_logic_gives_the_in_process_nodes(module):
    """What the panel does on Apply (without its QTimer): child process, then the same nodes as run()."""
    from LungSegLib.background import RUNNING

    lungseg, scene = module
    image, _, _ = chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))
    volume = mrml.image_to_volume_node(image, scene, "phantom")
    logic = lungseg.LungSegLogic()
    run = logic.startBackgroundRun(volume, Parameters(engine="hu").to_dict())
    while run.poll() == RUNNING:
        run.wait(120)
    segmentation, table = logic.loadResult(run, volume)
    reference_seg, reference_table = lungseg.LungSegLogic().run(volume, engine="hu")
    assert np.array_equal(mrml.segmentation_to_labels(segmentation, volume),
                          mrml.segmentation_to_labels(reference_seg, volume))
    assert mrml.table_to_rows(table) == mrml.table_to_rows(reference_table)
    assert logic.lastResult.engine == "hu" and not run.rundir.exists()


def test_removed_input_is_a_clear_error_not_a_crash(module):
    from LungSegLib.background import RUNNING
    from LungSegLib.errors import LungSegError

    lungseg, scene = module
    volume = mrml.image_to_volume_node(chest_phantom(shape=(32, 48, 48), spacing=(4.0, 4.0, 4.0))[0], scene, "ct")
    logic = lungseg.LungSegLogic()
    run = logic.startBackgroundRun(volume, Parameters(engine="hu").to_dict())
    scene.RemoveNode(volume)  # the user deletes the input while the run goes on
    while run.poll() == RUNNING:
        run.wait(120)
    with pytest.raises(LungSegError, match="input volume was removed"):
        logic.loadResult(run, volume)
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0


def test_load_radiograph_and_show_surfaces(module):
    from conftest import SAMPLES

    lungseg, scene = module
    picture = SAMPLES / "montgomery_MCUCXR_0001_0.png"
    node = lungseg.LungSegLogic.loadRadiograph(picture, scene)
    assert node.GetImageData().GetDimensions()[2] == 1 and node.GetName() == "montgomery_MCUCXR_0001_0"
    ct = mrml.image_to_volume_node(chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))[0], scene, "ct")
    segmentation, _ = lungseg.LungSegLogic().run(ct, engine="hu")
    lungseg.LungSegLogic.showSurfaces(segmentation, True)
    surface = segmentation.GetSegmentation()
    assert surface.ContainsRepresentation(slicer.vtkSegmentationConverter.GetClosedSurfaceRepresentationName())
    polydata = slicer.vtkPolyData() if hasattr(slicer, "vtkPolyData") else __import__("vtk").vtkPolyData()
    segmentation.GetClosedSurfaceRepresentation("right_lung", polydata)
    assert polydata.GetNumberOfPoints() > 100 and segmentation.GetDisplayNode().GetVisibility3D()
    lungseg.LungSegLogic.showSurfaces(segmentation, False)
    assert not surface.ContainsRepresentation(slicer.vtkSegmentationConverter.GetClosedSurfaceRepresentationName())


def test_colour_radiograph_vector_volume_is_segmented_in_grey(module, random_weights):
    """Slicer loads a colour PNG as a vtkMRMLVectorVolumeNode; the panel's selector now lists it."""
    lungseg, scene = module
    rng = np.random.default_rng(1)
    grey = rng.normal(120, 30, (1, 128, 96)).clip(0, 255)
    node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "colour cxr")
    slicer.util.updateVolumeFromArray(node, np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8))
    node.SetSpacing(0.5, 0.5, 1.0)
    segmentation, table = lungseg.LungSegLogic().run(node, engine="cxr", weights=str(random_weights("cxr")))
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 2
    assert table.GetTable().GetColumnByName("pixel_count") is not None


def test_install_dependencies_uses_pytorchutils_then_pip_ensure_with_torch_pinned(module, monkeypatch):
    from LungSegLib import dependencies
    from LungSegLib.errors import LungSegError

    lungseg, _ = module
    base = {"numpy": "2.1", "scipy": "1.14", "SimpleITK": "2.4.0", "nibabel": "5.3", "pydicom": "3.0.1",
            "pillow": "11", "scikit-image": "0.25", "slicerio": "1.4.0", "tqdm": "4.67", "packaging": "24",
            "matplotlib": "3.9", "highdicom": "0.28"}
    state = {"torch": None, "monai": None}
    monkeypatch.setattr(dependencies, "installed_versions", lambda names=None: {**base, **state})
    logic = lungseg.LungSegLogic()
    with pytest.raises(LungSegError, match="install the 'PyTorch' extension from the Extensions Manager"):
        logic.installDependencies(askConfirmation=False)  # no PyTorchUtils in this Python

    calls = []

    class PyTorchUtilsLogic:  # the PyTorch extension's logic, as Slicer would import it
        def installTorch(self, askConfirmation=False, torchVersionRequirement=None):
            calls.append(("torch", askConfirmation, torchVersionRequirement))
            state["torch"] = "2.6.0+cu124"
            return object()

    def pip_ensure(requirements, constraints=None, prompt_install=True, prompt_restart=True, requester=None):
        calls.append(("pip", [str(r) for r in requirements], open(constraints).read(), prompt_install,
                      prompt_restart, requester))

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    monkeypatch.setitem(sys.modules, "slicer.pydeps", types.SimpleNamespace(pip_ensure=pip_ensure))
    monkeypatch.setattr(slicer, "pydeps", sys.modules["slicer.pydeps"], raising=False)
    done = logic.installDependencies(askConfirmation=False)
    assert calls == [("torch", False, ">=2.0"),
                     ("pip", ["monai<1.6,>=1.3"], "torch==2.6.0+cu124\n", False, False, "LungSeg")]
    assert done.constraints == ["torch==2.6.0+cu124"] and not done.torch
