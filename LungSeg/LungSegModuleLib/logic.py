"""LungSegLogic: all computation of the module, usable without the GUI (Python console, batch)."""

import logging
import sys

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from .parameters import LungSegParameterNode


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
