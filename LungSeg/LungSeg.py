"""LungSeg: right/left lung segmentation and lung measurements for chest CT and chest radiographs.

Module, Widget, Logic and Test in Slicer's ScriptedLoadableModule pattern. All computation lives in
qt-free code (LungSegLib, through :class:`LungSegLogic`); the widget only maps GUI <-> parameter node,
shows progress and the results table.

Python console::

    logic = slicer.util.getModuleLogic("LungSeg")
    segmentationNode, tableNode = logic.run(slicer.util.getNode("CT"), engine="auto")
"""

import enum
import logging
import os
import pathlib
import sys
from typing import Annotated

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if (_REPO_ROOT / "LungSegLib" / "__init__.py").is_file() and str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))  # module loaded from a source checkout


class LungSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LungSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["LungSeg contributors"]
        # literal strings inside _() so Slicer's translation tools can extract them
        self.parent.helpText = _("""Segments the patient's right and left lung in a chest CT volume or a chest radiograph
(a single-slice volume) and measures them. Engines: <b>auto</b> (radiograph model for radiographs, else the
shipped CT network trained for the volume's pixel size with the best validation and external-check Dice,
else HU threshold), <b>ct2d</b> (slice-wise CT network), <b>ct3d</b>
(3D CT network), <b>cxr</b> (radiograph network), <b>hu</b> (classical HU threshold, no model).<br>
CT measurements per structure (right, left, both): <b>volume_ml</b> = voxel count x voxel volume;
<b>weight_g</b> = sum(voxel mL x clip((HU+1000)/1000, 0, 1)) x density (two-compartment gas/tissue model);
<b>gas_volume_ml</b> = sum(voxel mL x clip(-HU/1000, 0, 1)); <b>mean_hu</b>; volume and weight fractions in
the HU bands over-aerated (&lt; -900), normally aerated (-900..-500), poorly aerated (-500..-100),
non-aerated (&ge; -100). Radiographs: projected lung area (pixels, cm&sup2; when the pixel spacing is known);
load one with <b>Load radiograph...</b>. Apply runs in a background process; Cancel stops it at once.
See <a href="https://github.com/lungseg/SlicerLungSeg">the project page</a>.""")
        self.parent.acknowledgementText = _("""Sample data: COPDGene CT (Regan EA et al., COPD 7(1):32-43, 2010) via the Chest Imaging
Platform test data (Brigham and Women's Hospital, CIP licence); Montgomery County chest X-ray set (Jaeger S
et al., Quant Imaging Med Surg 4(6):475-477, 2014). Models trained on Montgomery and Shenzhen radiographs
(Jaeger 2014; Candemir S et al., IEEE TMI 33(2):577-590, 2014; Shenzhen masks: Stirenko S et al., 2018) and
LCTSC chest CTs (Yang J et al., Med Phys 45(10):4568-4581, 2018; TCIA, Clark K et al., J Digit Imaging
26(6):1045-1057, 2013). Built on MONAI, PyTorch, SimpleITK and 3D Slicer.""")
        slicer.app.connect("startupCompleted()", registerSampleData)


class Engine(enum.Enum):
    auto = "auto"
    hu = "hu"
    ct2d = "ct2d"
    ct3d = "ct3d"
    ct2d_ct3d = "ct2d+ct3d"
    cxr = "cxr"

    def label(self):
        return {"auto": _("auto"), "hu": _("HU threshold (no model)"), "ct2d": _("CT slice-wise network"),
                "ct3d": _("CT 3D network"), "ct2d+ct3d": _("CT slice-wise + 3D networks (mean)"),
                "cxr": _("radiograph network")}[self.value]


class Arch(enum.Enum):
    auto = "auto"
    unet = "unet"
    resunet = "resunet"

    def label(self):
        return {"auto": _("auto (best validated)"), "unet": "UNet", "resunet": "ResUNet"}[self.value]


class Device(enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"

    def label(self):
        return {"auto": _("auto"), "cpu": "CPU", "cuda": _("GPU (CUDA)")}[self.value]


class Modality(enum.Enum):
    auto = "auto"
    CT = "CT"
    CXR = "CXR"

    def label(self):
        return {"auto": _("auto (single slice = radiograph)"), "CT": "CT", "CXR": _("radiograph")}[self.value]


class Position(enum.Enum):
    auto = "auto"
    supine = "supine"
    prone = "prone"

    def label(self):
        return {"auto": _("auto (DICOM or orientation)"), "supine": _("supine"), "prone": _("prone")}[self.value]


@parameterNodeWrapper
class LungSegParameterNode:
    """Same field names as LungSegLib.params.Parameters and the regional options of LungSegLib.options.CaseOptions,
    plus the input and output nodes."""
    inputVolume: vtkMRMLScalarVolumeNode
    engine: Engine = Engine.auto
    arch: Arch = Arch.auto
    device: Device = Device.auto
    threads: Annotated[int, WithinRange(0, 256)] = 0
    modality: Modality = Modality.auto
    density: Annotated[float, WithinRange(0.5, 2.0)] = 1.0
    weights: pathlib.Path = pathlib.Path("")
    allow_non_hu: bool = False
    batch_size: Annotated[int, WithinRange(1, 512)] = 16
    levels: Annotated[int, WithinRange(1, 100)] = 10     # LungSegLib.options.CaseOptions: regional CT measurements
    position: Position = Position.auto
    outputSegmentation: vtkMRMLSegmentationNode
    outputTable: vtkMRMLTableNode


class LungSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel. Apply runs the segmentation in a background process (LungSegLib.background) polled by a
    QTimer, so Slicer stays responsive and Cancel kills it at once; the result becomes the nodes here."""

    POLL_MS = 200

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None          # LungSegLib.background.BackgroundRun while running
        self._runInput = None     # the volume node being segmented
        self._timer = None

    @property
    def _running(self):
        return self._run is not None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LungSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LungSegLogic()
        self.ui.progressBar.hide()
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_MS)
        self._timer.connect("timeout()", self.onPoll)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAboutToBeRemovedEvent, self.onNodeAboutToBeRemoved)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.loadRadiographButton.connect("clicked(bool)", self.onLoadRadiograph)
        self.ui.show3DButton.connect("toggled(bool)", self.onShow3D)
        self.ui.show3DButton.enabled = False
        self.initializeParameterNode()

    def cleanup(self):
        self.cancelRun()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:  # keep the node; stop mirroring it while the module is hidden
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyButton)

    def onSceneStartClose(self, caller, event):
        if self._running:  # the input is going away: stop the run, load nothing
            self.cancelRun(_("Cancelled: the scene was closed."))
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAboutToBeRemoved(self, caller, event, node):
        if self._running and node is self._runInput:
            self.cancelRun(_("Cancelled: the input volume was removed."))

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyButton)
        self._parameterNode = parameterNode
        if parameterNode is not None:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateApplyButton)
            self.updateApplyButton()

    def updateApplyButton(self, caller=None, event=None):
        """Apply only when the inputs are valid; Cancel while running (options locked meanwhile)."""
        for section in (self.ui.inputsCollapsibleButton, self.ui.advancedCollapsibleButton,
                        self.ui.outputsCollapsibleButton):
            section.enabled = not self._running
        if self._running:
            self.ui.applyButton.text = _("Cancel")
            self.ui.applyButton.toolTip = _("Stop the segmentation now; nothing is added to the scene")
            self.ui.applyButton.enabled = True
            return
        problem = "" if self._parameterNode is None else self.logic.inputProblem(self._parameterNode)
        self.ui.applyButton.text = _("Apply")
        self.ui.applyButton.toolTip = problem or _("Segment the lungs and measure them")
        self.ui.applyButton.enabled = self._parameterNode is not None and not problem

    def onApplyButton(self):
        if self._running:
            self.cancelRun(_("Cancelled."))
            return
        if not self.ensurePythonPackages():
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("LungSeg could not start."), waitCursor=True):
            self._run = self.logic.startBackgroundRun(p.inputVolume, self.logic.parametersFromNode(p),
                                                      self.logic.optionsFromNode(p))
            self._runInput = p.inputVolume
            self.ui.progressBar.value = 0
            self.ui.progressBar.setFormat(_("starting") + " (%p%)")
            self.ui.progressBar.show()
            self.ui.statusLabel.text = ""
            self.updateApplyButton()
            self._timer.start()

    def onPoll(self):
        """Timer tick: move the bar; when the child is done, turn its result into nodes."""
        from LungSegLib.background import RUNNING

        if self._run is None:
            self._timer.stop()
            return
        state = self._run.poll()
        for fraction, message in self._run.take_progress():
            self.ui.progressBar.value = int(round(100 * fraction))
            self.ui.progressBar.setFormat(f"{message} (%p%)")
        if state == RUNNING:
            return
        run, volume = self._run, self._runInput
        self._finishRun()
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("LungSeg failed."), waitCursor=True):
            segmentation, table = self.logic.loadResult(run, volume, p.outputSegmentation, p.outputTable)
            p.outputSegmentation, p.outputTable = segmentation, table
            self.showResults(volume, segmentation, table)

    def cancelRun(self, message=""):
        if self._run is not None:
            self._run.cancel()  # kills the child process group and removes its temporary folder
        self._finishRun()
        if message:
            self.ui.statusLabel.text = message

    def _finishRun(self):
        if self._timer is not None:
            self._timer.stop()
        self._run, self._runInput = None, None
        self.ui.progressBar.hide()
        self.updateApplyButton()

    def onLoadRadiograph(self):
        path = qt.QFileDialog.getOpenFileName(
            slicer.util.mainWindow(), _("Load radiograph"), "",
            _("Radiographs") + " (*.png *.jpg *.jpeg *.tif *.tiff *.dcm *.dicom);;" + _("All files") + " (*)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("The radiograph could not be loaded."), waitCursor=True):
            node = self.logic.loadRadiograph(path)
            self._parameterNode.inputVolume = node
            slicer.util.setSliceViewerLayers(background=node, fit=True)

    def onShow3D(self, show):
        segmentation = self._parameterNode.outputSegmentation if self._parameterNode else None
        if segmentation is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not show the lungs in 3D."), waitCursor=True):
            self.logic.showSurfaces(segmentation, show)
            if show:
                slicer.app.layoutManager().threeDWidget(0).threeDView().resetFocalPoint()

    def showResults(self, volume, segmentation, table):
        from LungSegLib.wording import result_notes

        slicer.util.setSliceViewerLayers(background=volume, fit=True)
        segmentation.GetDisplayNode().SetVisibility(True)
        self.ui.resultsTableView.setMRMLTableNode(table)
        self.ui.resultsCollapsibleButton.collapsed = False
        self.ui.show3DButton.enabled = True
        self.ui.show3DButton.checked = False
        result = self.logic.lastResult
        notes = result_notes(result.warnings, result.qc.get("flags", [])) if result else ""
        self.ui.qcLabel.text = notes or _("No input warnings and no quality-control findings.")
        self.ui.statusLabel.text = _("Done with engine {engine}.").format(engine=result.engine if result else "?")

    def ensurePythonPackages(self):
        """Install what this run lacks on first use, after one confirmation (never at import); torch through
        the PyTorch extension, the rest through pip with torch pinned; offer a restart when a loaded package
        changed."""
        params = self.logic.parametersFromNode(self._parameterNode)
        plan = self.logic.dependencyPlan(params, self._parameterNode.inputVolume)
        if plan.empty:
            return True
        if not slicer.util.confirmOkCancelDisplay(
                _("LungSeg needs Python packages that are not installed yet:") + f"\n{plan.summary()}.\n" +
                _("Install them now? This may take several minutes."), _("LungSeg: install Python packages")):
            return False
        with slicer.util.tryWithErrorDisplay(_("Installing Python packages failed."), waitCursor=True):
            done = self.logic.installDependencies(network=self.logic.needsNetwork(params, self._parameterNode.inputVolume),
                                                  askConfirmation=False)
            if done.restart and slicer.util.confirmYesNoDisplay(
                    _("These packages were already loaded and have been replaced: {names}. Restart Slicer now to "
                      "use the new versions?").format(names=", ".join(done.restart)), _("LungSeg: restart")):
                slicer.util.restart()
            return not done.restart
        return False


class LungSegLogic(ScriptedLoadableModuleLogic):
    """All computation; usable without the GUI (Python console, batch). Qt-free."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.lastResult = None

    def getParameterNode(self):
        return LungSegParameterNode(super().getParameterNode())

    @staticmethod
    def parametersFromNode(p) -> dict:
        weights = "" if str(p.weights) in ("", ".") else str(p.weights)
        return {"engine": p.engine.value, "arch": p.arch.value, "device": p.device.value, "threads": p.threads,
                "modality": p.modality.value, "density": p.density, "weights": weights,
                "allow_non_hu": p.allow_non_hu, "batch_size": p.batch_size}

    @staticmethod
    def optionsFromNode(p) -> dict:
        """The regional-measurement options (LungSegLib.options.CaseOptions fields) set in the panel."""
        return {"levels": p.levels, "position": p.position.value}

    def inputProblem(self, p) -> str:
        from LungSegLib.mrml_io import input_problem
        from LungSegLib.params import Parameters

        return input_problem(p.inputVolume, Parameters(**self.parametersFromNode(p)))

    @staticmethod
    def engineFor(parameters: dict, volumeNode=None) -> str:
        """The engine a run will use ("auto" resolved for this volume)."""
        from LungSegLib.mrml_io import engine_for_node
        from LungSegLib.params import Parameters

        return engine_for_node(volumeNode, Parameters(**parameters))

    def needsNetwork(self, parameters: dict, volumeNode=None) -> bool:
        return self.engineFor(parameters, volumeNode) != "hu"

    def dependencyPlan(self, parameters: dict, volumeNode=None):
        """What must be installed for this run (LungSegLib.dependencies.Plan); empty when nothing."""
        from LungSegLib import dependencies

        return dependencies.plan_dependencies(dependencies.installed_versions(),
                                              self.needsNetwork(parameters, volumeNode), loaded=set(sys.modules))

    def missingPackages(self, parameters: dict, volumeNode=None) -> list:
        """Names of the distributions this run cannot do without (torch and MONAI only for network engines)."""
        plan = self.dependencyPlan(parameters, volumeNode)
        from packaging.requirements import Requirement

        return (["torch"] if plan.torch else []) + [Requirement(r).name for r in plan.pip]

    def installDependencies(self, network=True, askConfirmation=True):
        """Install LungSeg's Python packages into Slicer (Python console:
        ``slicer.util.getModuleLogic("LungSeg").installDependencies()``). torch comes from the PyTorch
        extension; pip installs the rest (MONAI fitted to that torch) with torch pinned by a constraints
        file, through ``slicer.pydeps.pip_ensure`` (Slicer >= 5.11) or ``slicer.util.pip_install``.
        Returns the plan carried out; ``plan.restart`` lists loaded packages that need a restart."""
        from LungSegLib import dependencies, slicer_install
        from LungSegLib.errors import LungSegError

        plan = dependencies.plan_dependencies(dependencies.installed_versions(), network, loaded=set(sys.modules))
        if plan.empty:
            logging.info("LungSeg: all Python packages are installed")
            return plan
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                _("LungSeg will install:") + f" {plan.summary()}.", _("LungSeg: install Python packages")):
            raise LungSegError("installation cancelled by the user")

        done = dependencies.install(network, slicer_install.install_torch, slicer_install.install_pip,
                                    log=logging.info)
        if done.restart:
            logging.warning(f"LungSeg: restart Slicer to use the new versions of {', '.join(done.restart)}")
        return done

    def run(self, volumeNode, engine="auto", arch="auto", device="auto", density=1.0, progress=None,
            segmentationNode=None, tableNode=None, levels=10, position="auto", **options):
        """Segment and measure ``volumeNode`` (CT or single-slice radiograph).

        Returns ``(segmentationNode, tableNode)``; new nodes are created unless given. ``levels`` and
        ``position`` ("auto", "supine", "prone") cut the regional CT measurements; ``options`` are the
        other LungSegLib Parameters fields (threads, modality, weights, allow_non_hu, batch_size).
        ``progress(fraction, message)`` returning False cancels (raises LungSegLib.errors.CancelledError).
        """
        from LungSegLib.dependencies import require_for
        from LungSegLib.mrml_io import engine_for_node, segment_volume_node
        from LungSegLib.options import CaseOptions
        from LungSegLib.params import Parameters

        params = Parameters(engine=engine, arch=arch, device=device, density=density, **options).validate()
        caseOptions = CaseOptions(levels=levels, position=position).validate()
        require_for(engine_for_node(volumeNode, params))  # one actionable line when torch/MONAI are missing
        logging.info(f"LungSeg: segmenting {volumeNode.GetName() if volumeNode else None} with {params}")
        segmentation, table, self.lastResult = segment_volume_node(volumeNode, params, progress,
                                                                    segmentationNode, tableNode, caseOptions)
        return segmentation, table


    # ------------------------------------------------------------------------ background run (the panel)
    @staticmethod
    def pythonExecutable() -> str:
        """The Python that runs background segmentations: Slicer's PythonSlicer (same packages as Slicer)."""
        import shutil

        return shutil.which("PythonSlicer") or sys.executable

    def startBackgroundRun(self, volumeNode, parameters: dict, options: dict | None = None):
        """Start segmenting a copy of ``volumeNode`` in a child process; returns the BackgroundRun to poll.
        ``options``: regional levels and position (LungSegLib.options.CaseOptions fields)."""
        from LungSegLib.background import BackgroundRun
        from LungSegLib.dependencies import require_for
        from LungSegLib.mrml import volume_node_to_image
        from LungSegLib.options import CaseOptions
        from LungSegLib.params import Parameters

        params = Parameters(**parameters).validate()
        caseOptions = CaseOptions(**(options or {})).validate()
        require_for(self.engineFor(parameters, volumeNode))
        return BackgroundRun(volume_node_to_image(volumeNode), params, python=self.pythonExecutable(),
                             options=caseOptions).start()

    def loadResult(self, run, volumeNode, segmentationNode=None, tableNode=None):
        """Nodes from a finished BackgroundRun (CancelledError / LungSegError when it did not finish)."""
        from LungSegLib.mrml_io import result_to_nodes

        result = run.result()
        segmentation, table = result_to_nodes(result, volumeNode, segmentationNode, tableNode)
        self.lastResult = result
        return segmentation, table

    # ------------------------------------------------------------------------------------ conveniences
    @staticmethod
    def loadRadiograph(path, scene=None):
        """One radiograph file (PNG/JPEG/TIFF/DICOM) as a single-slice volume with its pixel spacing; Slicer's
        own reader would take a numbered PNG as a file series unless "Single File" is ticked."""
        from LungSegLib.image import CXR
        from LungSegLib.mrml_io import load_volume

        return load_volume(path, scene or slicer.mrmlScene, modality=CXR)

    @staticmethod
    def showSurfaces(segmentationNode, show=True):
        """Closed-surface representation on (the 3D view shows the lungs) or off."""
        if show:
            segmentationNode.CreateClosedSurfaceRepresentation()
        else:
            segmentationNode.RemoveClosedSurfaceRepresentation()
        segmentationNode.GetDisplayNode().SetVisibility3D(show)


def registerSampleData():
    """SampleData module entries for the bundled CT (CIP/COPDGene) and radiograph (Montgomery), loaded from
    the extension's own files (no download)."""
    import SampleData

    samples = pathlib.Path(os.path.dirname(__file__)) / "Resources" / "Samples"
    if not samples.is_dir():  # source checkout
        samples = _REPO_ROOT / "samples"
    icon = os.path.join(os.path.dirname(__file__), "Resources", "Icons", "LungSeg.png")
    for name, fileName, node in (("LungSeg chest CT (CIP)", "ct-64.nrrd", "LungSegChestCT"),
                                 ("LungSeg chest radiograph (Montgomery)", "montgomery_MCUCXR_0001_0.png",
                                  "LungSegChestRadiograph")):
        path = samples / fileName
        if path.is_file():
            SampleData.SampleDataLogic.registerCustomSampleDataSource(
                category="LungSeg", sampleName=name, thumbnailFileName=icon, uris=path.as_uri(),
                fileNames=fileName, nodeNames=node, loadFileType="VolumeFile",
                loadFileProperties={"singleFile": True})


class LungSegTest(ScriptedLoadableModuleTest):
    """Offline: a synthetic chest phantom and the bundled CIP sample, with the HU engine (no weights)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_synthetic_phantom()
        self.setUp()
        self.test_bundled_sample()
        self.setUp()
        self.test_background_run()

    def test_synthetic_phantom(self):
        from LungSegLib.mrml import image_to_volume_node, segmentation_to_labels
        from LungSegLib.phantom import chest_phantom

        self.delayDisplay("Synthetic chest phantom")
        image, truth, volume_ml = chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))
        volume = image_to_volume_node(image, slicer.mrmlScene, "phantom")
        steps = []
        segmentation, table = LungSegLogic().run(volume, engine="hu",
                                                 progress=lambda f, m: steps.append(m) or True)
        self.assertTrue(steps)
        labels = segmentation_to_labels(segmentation, volume)
        for value in (1, 2):
            dice = 2 * ((labels == value) & (truth == value)).sum() / ((labels == value).sum() + (truth == value).sum())
            self.assertGreater(dice, 0.95)
        segments = segmentation.GetSegmentation()
        self.assertEqual(segments.GetSegment("right_lung").GetName(), "Right lung")
        self.assertEqual(segments.GetSegment("left_lung").GetName(), "Left lung")
        self.assertEqual(table.GetNumberOfRows(), 3)
        right = table.GetTable().GetValueByName(0, "volume_ml").ToDouble()
        self.assertAlmostEqual(right / volume_ml, 1.0, delta=0.05)
        self.delayDisplay("Phantom passed")

    def test_bundled_sample(self):
        from LungSegLib.mrml_io import load_volume

        candidates = [pathlib.Path(os.path.dirname(__file__)) / "Resources" / "Samples" / "ct-64.nrrd",  # installed
                      _REPO_ROOT / "samples" / "ct-64.nrrd"]  # source checkout
        sample = next((c for c in candidates if c.is_file()), None)
        if sample is None:
            self.delayDisplay("Bundled sample ct-64.nrrd not found; skipped")
            return
        self.delayDisplay(f"Bundled sample {sample}")
        volume = load_volume(sample, slicer.mrmlScene)
        segmentation, table = LungSegLogic().run(volume, engine="hu")
        both = table.GetTable().GetValueByName(2, "volume_ml").ToDouble()
        self.assertTrue(3000 < both < 6500, f"both lungs {both:.0f} mL")  # reference mask: 4554 mL
        self.assertGreater(table.GetTable().GetValueByName(2, "weight_g").ToDouble(), 0)
        self.delayDisplay("Bundled sample passed")

    def test_background_run(self):
        """What Apply does: the segmentation in a PythonSlicer child process, then the same nodes as run()."""
        from LungSegLib.background import RUNNING
        from LungSegLib.mrml import image_to_volume_node, segmentation_to_labels
        from LungSegLib.phantom import chest_phantom

        self.delayDisplay("Background run (child process)")
        volume = image_to_volume_node(chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))[0],
                                      slicer.mrmlScene, "phantom")
        logic = LungSegLogic()
        run = logic.startBackgroundRun(volume, {"engine": "hu"})
        while run.poll() == RUNNING:
            run.wait(300)
        segmentation, table = logic.loadResult(run, volume)
        reference, referenceTable = LungSegLogic().run(volume, engine="hu")
        self.assertTrue((segmentation_to_labels(segmentation, volume) == segmentation_to_labels(reference, volume)).all())
        self.assertEqual(table.GetTable().GetValueByName(2, "volume_ml").ToDouble(),
                         referenceTable.GetTable().GetValueByName(2, "volume_ml").ToDouble())
        self.assertFalse(run.rundir.exists())
        self.delayDisplay("Background run passed")
