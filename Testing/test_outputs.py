"""The per-batch and per-case outputs added for regional analysis: regions.csv, the regions section of
measurements.json, report.png, index.html (a browser test is in test_browser.py)."""

import csv
import json
import re
import shutil

import numpy as np
import pytest
from conftest import SAMPLES

from LungSegLib.cli import main
from LungSegLib.figures import LEFT_RGB, RIGHT_RGB, save_report_png
from LungSegLib.html_report import render_index
from LungSegLib.measure import measure_ct
from LungSegLib.params import Parameters
from LungSegLib.phantom import chest_phantom
from LungSegLib.pipeline import segment_image
from LungSegLib.regions import measure_regions
from LungSegLib.report import REGION_COLUMNS


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "out"
    code = main(["segment", str(SAMPLES / "ct-64.nrrd"), str(SAMPLES / "montgomery_MCUCXR_0001_0.png"),
                 str(SAMPLES / "missing.nrrd"), "-o", str(out), "--engine", "auto", "--quiet", "--levels", "5",
                 "--position", "prone"])
    assert code == 1  # the missing input fails; the two others are done
    return out


def test_regions_csv_has_one_row_per_case_structure_region_matching_the_json(batch):
    rows = _rows(batch / "regions.csv")
    assert list(rows[0]) == REGION_COLUMNS
    assert len(rows) == 3 * (5 + 3) and {r["case"] for r in rows} == {"ct-64"}  # radiographs have no regions
    report = json.loads((batch / "ct-64" / "measurements.json").read_text())
    regions = report["regions"]
    assert regions["levels"] == 5 and regions["position"] == "prone" and regions["dependent_side"] == "ventral"
    assert "--position" in regions["position_source"]
    for row, expected in zip(rows, regions["rows"]):
        assert (row["structure"], row["kind"], row["region"]) == (expected["structure"], expected["kind"],
                                                                  expected["region"])
        assert float(row["weight_g"]) == pytest.approx(expected["weight_g"])
        assert row["position"] == "prone"
    both = [r for r in rows if r["structure"] == "both" and r["kind"] == "ventral_dorsal"]
    assert sum(float(r["weight_g"]) for r in both) == pytest.approx(report["structures"]["both"]["weight_g"])
    assert "regions" not in json.loads((batch / "montgomery_MCUCXR_0001_0" / "measurements.json").read_text())


def _picture(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def test_report_png_per_case_is_large_and_not_blank(batch):
    ct = _picture(batch / "ct-64" / "report.png")
    assert ct.shape[0] >= 900 and ct.shape[1] >= 1500
    assert ct.std() > 20
    # the lung outlines are drawn in the legend colours
    for colour in (RIGHT_RGB, LEFT_RGB):
        assert (np.abs(ct.astype(int) - colour).sum(-1) < 10).sum() > 500
    cxr = _picture(batch / "montgomery_MCUCXR_0001_0" / "report.png")
    assert cxr.shape[1] >= 1200 and cxr.std() > 20


def test_report_png_of_a_case_without_lung(tmp_path):
    image, _, _ = chest_phantom(shape=(40, 48, 56), spacing=(4.0, 4.0, 4.0))
    result = segment_image(image, Parameters(engine="hu"))
    result.labels = result.labels.with_array(np.zeros_like(result.labels.array))
    result.measurements = measure_ct(result.labels.array, image.array, image.voxel_volume_ml)
    result.measurements["regions"] = measure_regions(result.labels.array, image)
    save_report_png(result, result.report("empty"), tmp_path / "report.png")
    assert _picture(tmp_path / "report.png").std() > 10


def test_index_html_is_self_contained_and_links_each_case_file(batch):
    page = (batch / "index.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page, flags=re.I)
    assert refs and all(not re.match(r"^([a-z][a-z0-9+.-]*:|/)", r, flags=re.I) for r in refs), refs
    for banned in ("http:", "https:", "<link", "@import", "url(", "<script src", "<iframe"):
        assert banned not in page.lower()
    for case in ("ct-64", "montgomery_MCUCXR_0001_0"):
        for name in ("report.png", "overlay.png", "measurements.json"):
            assert f'href="{case}/{name}"' in page or f'src="{case}/{name}"' in page
            assert (batch / case / name).is_file()
    assert 'href="ct-64/lungs.nii.gz"' in page and 'href="montgomery_MCUCXR_0001_0/lungs.png"' in page
    assert 'class="failed"' in page and "missing" in page and "no such file" in page


def test_index_escapes_hostile_text():
    page = render_index([("x", None, set(), {"case": "<b>x</b>", "error": "<script>alert(1)</script>",
                                             "input": "a\"b"})])
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_index_and_regions_are_regenerated_on_resume(tmp_path):
    out = tmp_path / "out"
    first = tmp_path / "first.nrrd"
    shutil.copy(SAMPLES / "ct-64.nrrd", first)
    assert main(["segment", str(first), "-o", str(out), "--engine", "hu", "--quiet"]) == 0
    assert "first" in (out / "index.html").read_text() and "second" not in (out / "index.html").read_text()
    (out / "index.html").unlink()
    second = tmp_path / "second.nrrd"
    shutil.copy(SAMPLES / "ct-64.nrrd", second)
    assert main(["segment", str(first), str(second), "-o", str(out), "--engine", "hu", "--quiet", "--resume"]) == 0
    page = (out / "index.html").read_text()
    assert "first" in page and "second" in page
    assert {r["case"] for r in _rows(out / "regions.csv")} == {"first", "second"}
