"""LungSegTest, the module's built-in self-test (Reload and Test; ctest through LungSeg.py)."""

import os
import pathlib

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from .logic import LungSegLogic

_HERE = pathlib.Path(os.path.dirname(os.path.abspath(__file__)))


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

        candidates = [_HERE.parent / "Resources" / "Samples" / "ct-64.nrrd",  # installed beside LungSeg.py
                      _HERE.parents[1] / "samples" / "ct-64.nrrd"]  # source checkout
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
