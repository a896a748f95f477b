"""The regions table node (second table of a CT run) against real MRML (slicer-core)."""

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")

from test_slicer_mrml import HU, oblique_phantom, volume_node_from_lps  # noqa: E402

from LungSegLib import mrml, mrml_io  # noqa: E402
from LungSegLib.mrml_regions import NUMBER_COLUMNS, REGIONS_TABLE_ATTRIBUTE  # noqa: E402
from LungSegLib.pipeline import segment_image  # noqa: E402


def test_ct_run_adds_a_regions_table_equal_to_lungseglib_and_reuses_it(tmp_path):
    scene = mrml.new_scene()
    node = volume_node_from_lps(scene, oblique_phantom()[0])
    seg, table, result = mrml_io.segment_volume_node(node, HU)
    regions = scene.GetNodeByID(table.GetAttribute(REGIONS_TABLE_ATTRIBUTE))
    assert regions is not None and regions.IsA("vtkMRMLTableNode") and regions is not table
    expected = segment_image(oblique_phantom()[0], HU).measurements["regions"]["rows"]
    vtk_table = regions.GetTable()
    assert vtk_table.GetNumberOfRows() == len(expected) == 3 * 13
    for r, row in enumerate(expected):
        for column in ("structure", "kind", "region"):
            assert vtk_table.GetValueByName(r, column).ToString() == row[column]
        for column in NUMBER_COLUMNS:
            assert vtk_table.GetValueByName(r, column).ToDouble() == pytest.approx(row[column], rel=1e-12, abs=1e-12)
    assert regions.GetColumnUnitLabel("weight_g") == "g" and regions.GetColumnUnitLabel("from_mm") == "mm"
    assert regions.GetAttribute("LungSeg.position") == "supine"  # its image rows run (tilted) to posterior
    n_tables = scene.GetNumberOfNodesByClass("vtkMRMLTableNode")
    mrml_io.segment_volume_node(node, HU, segmentation_node=seg, table_node=table)  # a rerun refills, adds none
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == n_tables
    mrml_io.save_table(regions, tmp_path / "regions.csv")
    lines = (tmp_path / "regions.csv").read_text().splitlines()
    assert lines[0].startswith('"structure","kind","region","index","from_mm"') and len(lines) == 1 + 39
    assert "g" in (tmp_path / "regions.schema.csv").read_text()
