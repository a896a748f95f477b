"""LungSeg: right/left lung segmentation and lung measurements for chest CT and chest radiographs.

Module and Widget in Slicer's ScriptedLoadableModule pattern; the parameter node, Logic and Test live in
LungSegModuleLib beside this file. All computation lives in qt-free code (LungSegLib, through
:class:`LungSegLogic`); the widget only maps GUI <-> parameter node, shows progress and the results table.

Python console::

    logic = slicer.util.getModuleLogic("LungSeg")
    segmentationNode, tableNode = logic.run(slicer.util.getNode("CT"), engine="auto")
"""

import os
import pathlib
import sys

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

_HERE = pathlib.Path(__file__).resolve().parent
_REPO_ROOT = _HERE.parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))  # LungSegModuleLib beside this file
if (_REPO_ROOT / "LungSegLib" / "__init__.py").is_file() and str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))  # module loaded from a source checkout

# Slicer looks these up by name in this module: <Module>Logic, <Module>Test; the widget binds the parameter node
from LungSegModuleLib.logic import LungSegLogic  # noqa: E402
from LungSegModuleLib.parameters import (Arch, Device, Engine, LungSegParameterNode, Modality,  # noqa: E402,F401
                                         Position)
from LungSegModuleLib.selftest import LungSegTest  # noqa: E402,F401


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
