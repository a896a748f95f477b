"""The regional CT measurements (:mod:`LungSegLib.regions`) as a second MRML table node: one row per
structure x region, a column per quantity with its unit. Qt-free, like :mod:`LungSegLib.mrml`."""

from __future__ import annotations

from .measure import CT_UNITS
from .mrml import CT_COLUMNS, _slicer

TEXT_COLUMNS = ["structure", "kind", "region"]
NUMBER_COLUMNS = ["index", "from_mm", "to_mm", *CT_COLUMNS]
REGIONS_TABLE_ATTRIBUTE = "LungSeg.regionsTable"  # on the main table: ID of its regions table


def regions_to_table_node(regions: dict, scene, table_node=None, name: str = "Lung regions"):
    """Fill (or create) a table node with the ``regions`` section of the measurements."""
    slicer = _slicer()
    import vtk

    table = table_node or scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    with slicer.util.NodeModify(table):
        table.RemoveAllColumns()
        arrays = []
        for column in TEXT_COLUMNS + NUMBER_COLUMNS:
            array = vtk.vtkStringArray() if column in TEXT_COLUMNS else (
                vtk.vtkLongLongArray() if column in ("index", "voxel_count") else vtk.vtkDoubleArray())
            array.SetName(column)
            arrays.append(array)
        for row in regions["rows"]:
            for column, array in zip(TEXT_COLUMNS + NUMBER_COLUMNS, arrays):
                array.InsertNextValue(row[column])
        for array in arrays:
            table.AddColumn(array)
        for column, unit in {"from_mm": "mm", "to_mm": "mm", **CT_UNITS}.items():
            if column in NUMBER_COLUMNS:
                table.SetColumnUnitLabel(column, unit)
        table.SetColumnDescription("from_mm", "region start: depth below the most ventral lung voxel (levels) or "
                                              "distance below the most cranial lung voxel (thirds)")
        table.SetColumnDescription("kind", "ventral_dorsal (levels, 1 = most ventral) or cranio_caudal (thirds)")
        table.SetUseColumnTitleAsColumnHeader(True)
        for key in ("position", "position_source", "dependent_side", "levels"):
            table.SetAttribute(f"LungSeg.{key}", str(regions[key]))
    return table


def update_regions_table(result, main_table, scene, name: str):
    """Regions table of a CT result, reusing the one the main table points to; None for radiographs."""
    regions = result.measurements.get("regions")
    if not regions:
        return None
    node_id = main_table.GetAttribute(REGIONS_TABLE_ATTRIBUTE)
    existing = scene.GetNodeByID(node_id) if node_id else None
    table = regions_to_table_node(regions, scene, existing, name)
    main_table.SetAttribute(REGIONS_TABLE_ATTRIBUTE, table.GetID())
    return table
