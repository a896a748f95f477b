"""Cancel: a progress callback returning False stops every engine at that step (also inside the long
steps: per batch of slices, per batch of 3D windows, per HU stage), raises CancelledError and nothing is
written or added to the scene."""

import numpy as np
import pytest

from LungSegLib.errors import CancelledError
from LungSegLib.image import Image
from LungSegLib.params import Parameters
from LungSegLib.phantom import chest_phantom
from LungSegLib.pipeline import segment_image


class StopAt:
    """Progress callback that records every call and answers False at call number ``stop`` (1-based)."""

    def __init__(self, stop):
        self.stop, self.calls = stop, []

    def __call__(self, fraction, message):
        self.calls.append((fraction, message))
        return len(self.calls) < self.stop


def run_until_cancelled(image, params, stop):
    progress = StopAt(stop)
    with pytest.raises(CancelledError, match="cancelled by the user"):
        segment_image(image, params, progress)
    return progress.calls


def test_hu_engine_stops_at_the_stage_that_asked():
    image = chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))[0]
    steps = []
    segment_image(image, Parameters(engine="hu"), lambda f, m: steps.append(m) or True)
    stages = steps[:-2]  # the HU stages, then "measuring" and "done"
    assert len(stages) >= 5 and steps[-2:] == ["measuring", "done"]
    for stop in range(1, len(steps) - 1):  # every stage, and after the engine (before measuring)
        calls = run_until_cancelled(chest_phantom(shape=(48, 64, 80), spacing=(3.0, 3.0, 4.0))[0],
                                    Parameters(engine="hu"), stop)
        assert [m for _, m in calls] == steps[:stop]  # stopped at once: no later step reported


def test_ct2d_stops_between_batches_of_slices(random_weights):
    image = chest_phantom(shape=(40, 64, 64), spacing=(4.0, 4.0, 4.0))[0]
    params = Parameters(engine="ct2d", weights=str(random_weights("ct2d")), batch_size=8)
    calls = run_until_cancelled(image, params, stop=3)
    assert [m for _, m in calls] == ["slices 1-8 of 40", "slices 9-16 of 40", "slices 17-24 of 40"]


def test_ct3d_stops_between_sliding_window_batches(random_weights, monkeypatch):
    from LungSegLib import engines

    image = chest_phantom(shape=(40, 128, 128), spacing=(3.0, 3.0, 8.0))[0]  # 384 x 384 x 320 mm: 8 windows
    params = Parameters(engine="ct3d", weights=str(random_weights("ct3d")), device="cpu")
    forwards = []
    real = engines.model_for

    def counting_model_for(*args):
        model, card = real(*args)
        return (lambda x: forwards.append(x.shape[0]) or model(x)), card
    monkeypatch.setattr(engines, "model_for", counting_model_for)
    calls = run_until_cancelled(image, params, stop=3)
    windows = [m for _, m in calls if "window" in m]
    assert windows == ["3D sliding-window inference, window 1 of 8", "3D sliding-window inference, window 3 of 8"]
    assert forwards == [2]  # one batch of 2 windows ran; cancelled before the second batch
    assert calls[-1][0] == pytest.approx(0.2 + 0.6 * 2 / 8)


def test_window_count_matches_what_monai_visits():
    torch = pytest.importorskip("torch")
    from monai.inferers import sliding_window_inference

    from LungSegLib.engines import window_count

    for shape in ((20, 30, 40), (96, 96, 96), (128, 154, 154), (97, 200, 100)):
        seen = []
        sliding_window_inference(torch.zeros((1, 1, *shape)), roi_size=(96, 96, 96), sw_batch_size=1,
                                 predictor=lambda x: seen.append(1) or x, overlap=0.25)
        assert window_count(shape, (96, 96, 96), 0.25) == len(seen), shape


def test_cxr_stops_before_and_after_inference(random_weights):
    rng = np.random.default_rng(0)
    image = Image(rng.normal(100, 20, (300, 260)).astype(np.float32), spacing=(0.5, 0.5), origin=(0.0, 0.0),
                  direction=(1.0, 0.0, 0.0, 1.0), modality="CXR")
    params = Parameters(engine="cxr", weights=str(random_weights("cxr")))
    assert [m for _, m in run_until_cancelled(image, params, 1)] == ["radiograph inference"]
    assert [m for _, m in run_until_cancelled(image, params, 2)] == ["radiograph inference", "resizing to the radiograph"]


def test_cancelled_cli_batch_case_writes_no_outputs(tmp_path, monkeypatch):
    """The CLI batch: a cancelled case leaves no case folder and no temporary files."""
    from LungSegLib import batch

    source = tmp_path / "ct.nrrd"
    import SimpleITK as sitk
    image = chest_phantom(shape=(32, 48, 48), spacing=(4.0, 4.0, 4.0))[0]
    sitk.WriteImage(sitk.GetImageFromArray(image.array.astype(np.int16)), str(source))
    monkeypatch.setattr(batch, "_slice_progress", lambda bar, case: (lambda f, m: m != "measuring"))
    summary = batch.run_batch([source], tmp_path / "out", Parameters(engine="hu"), show_progress=False)
    assert summary["failed"] == 1 and "cancelled" in summary["errors"][0]["error"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["errors.csv", "index.html", "measurements.csv"]


def test_threads_apply_to_one_run_and_are_restored(random_weights):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    seen = []
    image = chest_phantom(shape=(16, 48, 48), spacing=(4.0, 4.0, 4.0))[0]
    params = Parameters(engine="ct2d", weights=str(random_weights("ct2d")), threads=before + 1, batch_size=16)
    segment_image(image, params, lambda f, m: seen.append(torch.get_num_threads()) or True)
    assert seen[0] == before + 1 and torch.get_num_threads() == before  # the session keeps its own setting
    with pytest.raises(CancelledError):
        segment_image(image, params, lambda f, m: False)
    assert torch.get_num_threads() == before  # restored on the way out of a cancel too
