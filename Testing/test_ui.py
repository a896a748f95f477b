"""The module panel file (LungSeg/Resources/UI/LungSeg.ui) against the module code, without Slicer:
well-formed, names used by LungSeg.py exist, parameter-node bindings (LungSegModuleLib/parameters.py) fit, only known Slicer widgets,
and an offscreen render with PySide6 (skipped when PySide6 is missing)."""

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import REPO
from LungSegLib.options import POSITIONS
from LungSegLib.params import ARCHS, DEVICES, ENGINES, MODALITIES, Parameters

UI_FILE = REPO / "LungSeg" / "Resources" / "UI" / "LungSeg.ui"
MODULE_FILE = REPO / "LungSeg" / "LungSeg.py"
PARAMETERS_FILE = REPO / "LungSeg" / "LungSegModuleLib" / "parameters.py"  # the parameter node and its enums
KNOWN_SLICER_WIDGETS = {  # classes provided by Slicer / CTK that Designer-made module panels use
    "qMRMLWidget", "qMRMLNodeComboBox", "qMRMLTableView", "qMRMLSegmentsTableView", "qMRMLSubjectHierarchyComboBox",
    "qMRMLSliderWidget", "qMRMLSpinBox", "ctkCollapsibleButton", "ctkCollapsibleGroupBox", "ctkSliderWidget",
    "ctkDoubleSpinBox", "ctkRangeWidget", "ctkPathLineEdit", "ctkDirectoryButton", "ctkCheckBox", "ctkComboBox",
}
# what Slicer's parameterNodeWrapper GUI connectors accept for each field type
CONNECTOR_WIDGETS = {"enum": {"QComboBox"}, "int": {"QSpinBox", "QSlider"}, "float": {"QDoubleSpinBox", "ctkSliderWidget"},
                     "bool": {"QCheckBox"}, "path": {"ctkPathLineEdit"}, "node": {"qMRMLNodeComboBox"}}


@pytest.fixture(scope="module")
def ui():
    return ET.parse(UI_FILE).getroot()


@pytest.fixture(scope="module")
def parameters_ast():
    return ast.parse(PARAMETERS_FILE.read_text())


def widgets(ui):
    return {w.get("name"): w for w in ui.iter("widget")}


def parameter_bindings(ui):
    out = {}
    for w in ui.iter("widget"):
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                out[p.find("string").text] = w
    return out


def module_class(tree, name):
    return next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)


def parameter_fields(tree):
    """{field: annotation source} of the @parameterNodeWrapper class."""
    cls = module_class(tree, "LungSegParameterNode")
    return {n.target.id: ast.unparse(n.annotation) for n in cls.body if isinstance(n, ast.AnnAssign)}


def enum_values(tree, name):
    return tuple(ast.literal_eval(n.value) for n in module_class(tree, name).body if isinstance(n, ast.Assign))


def field_kind(annotation):
    if annotation in ("Engine", "Arch", "Device", "Modality", "Position"):
        return "enum"
    if annotation.startswith("vtkMRML"):
        return "node"
    if "pathlib.Path" in annotation:
        return "path"
    return re.search(r"\b(int|float|bool|str)\b", annotation).group(1)


def test_ui_parses_with_a_qmrmlwidget_top_level(ui):
    top = ui.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == "LungSeg"


def test_every_ui_name_used_by_the_module_exists(ui):
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE_FILE.read_text()))
    assert used, "LungSeg.py uses no self.ui names?"
    missing = used - set(widgets(ui))
    assert not missing, f"LungSeg.py uses widgets missing from LungSeg.ui: {sorted(missing)}"


def test_parameter_names_match_the_parameter_node_both_ways(ui, parameters_ast):
    fields = parameter_fields(parameters_ast)
    regional = {"levels", "position"}  # CaseOptions fields the panel offers (not dicom_seg: a file output)
    expected = set(Parameters.field_names()) | regional | {"inputVolume", "outputSegmentation", "outputTable"}
    assert set(fields) == expected, "parameter node fields must be Parameters' fields, levels/position + the nodes"
    assert set(parameter_bindings(ui)) == set(fields)


def test_bound_widgets_fit_the_field_types(ui, parameters_ast):
    fields = parameter_fields(parameters_ast)
    for name, widget in parameter_bindings(ui).items():
        kind = field_kind(fields[name])
        assert widget.get("class") in CONNECTOR_WIDGETS[kind], f"{name}: {widget.get('class')} cannot show a {kind}"


def test_choices_match_lungseglib(ui, parameters_ast):
    for enum_name, allowed, combo in (("Engine", ENGINES, "engineComboBox"), ("Arch", ARCHS, "archComboBox"),
                                      ("Device", DEVICES, "deviceComboBox"),
                                      ("Modality", MODALITIES, "modalityComboBox"),
                                      ("Position", POSITIONS, "positionComboBox")):
        assert enum_values(parameters_ast, enum_name) == tuple(allowed)
        assert len(widgets(ui)[combo].findall("item")) == len(allowed)  # same entries as the connector fills in


def test_only_known_slicer_custom_widgets(ui):
    declared = {c.find("class").text for c in ui.iter("customwidget")}
    assert declared <= KNOWN_SLICER_WIDGETS, declared - KNOWN_SLICER_WIDGETS
    used = {w.get("class") for w in ui.iter("widget")}
    assert {c for c in used if not c.startswith("Q")} <= declared


def test_node_selectors_ask_for_the_right_node_types(ui):
    types = {name: [s.text for s in w.iter("string")] for name, w in widgets(ui).items() if w.get("class") == "qMRMLNodeComboBox"}
    assert "vtkMRMLScalarVolumeNode" in types["inputVolumeSelector"]
    assert "vtkMRMLVectorVolumeNode" in types["inputVolumeSelector"]  # colour PNG/JPEG radiographs
    assert "vtkMRMLSegmentationNode" in types["outputSegmentationSelector"]
    assert "vtkMRMLTableNode" in types["outputTableSelector"]
    receivers = {c.find("receiver").text for c in ui.iter("connection") if "mrmlSceneChanged" in c.find("signal").text}
    assert set(types) | {"resultsTableView"} <= receivers  # every MRML widget gets the scene


def test_module_compiles_and_imports_no_gui_toolkit_in_lungseglib():
    for path in (MODULE_FILE, *(REPO / "LungSeg" / "LungSegModuleLib").glob("*.py")):
        compile(path.read_text(), str(path), "exec")
    names = re.findall(r"\$\{MODULE_NAME\}(ModuleLib/\w+\.py)", (REPO / "LungSeg" / "CMakeLists.txt").read_text())
    assert sorted(names) == sorted(f"ModuleLib/{p.name}" for p in (REPO / "LungSeg" / "LungSegModuleLib").glob("*.py"))
    for path in (REPO / "LungSegLib").glob("*.py"):
        text = path.read_text(encoding="utf-8")  # GDCM (DICOM tests) may switch the C locale to ASCII
        assert not re.search(r"^\s*(import|from)\s+(qt|ctk|PySide6|PyQt5)\b", text, re.M), path.name
        assert "slicer.app" not in text.replace("getattr(slicer, \"app\"", ""), path.name


def test_panel_renders_offscreen(tmp_path):
    pytest.importorskip("PySide6.QtUiTools", reason="PySide6 is not installed")
    out = tmp_path / "panel.png"
    proc = subprocess.run([sys.executable, str(REPO / "Testing" / "render_panel.py"), str(out)],
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    picture = Image.open(out).convert("L")
    assert picture.width >= 400 and picture.height >= 500
    assert len(picture.getcolors(maxcolors=1 << 16)) > 20  # drawn widgets, not a blank canvas


def test_new_result_widgets_and_translation_markers(ui):
    w = widgets(ui)
    assert w["show3DButton"].get("class") == "QPushButton" and w["loadRadiographButton"].get("class") == "QPushButton"
    assert w["qcLabel"].get("class") == "QLabel"
    for stringlist in ui.iter("stringlist"):  # node class names must not reach translators
        assert stringlist.get("notr") == "true"
    text = MODULE_FILE.read_text()
    assert "from slicer.i18n import tr as _" in text and 'translate("qSlicerAbstractCoreModule", "Segmentation")' in text
    assert 'self.parent.title = _("LungSeg")' in text


def test_every_qc_flag_has_plain_words():
    from LungSegLib.wording import QC_TEXT

    source = (REPO / "LungSegLib" / "qc.py").read_text(encoding="utf-8")
    flags = set(re.findall(r'"([a-z][a-z0-9_.]+)"', source[source.index("def qc_ct"):]))
    flags = {f for f in flags if "_" in f and f not in ("flags", "hu_calibration", "large_components",
                                                        "lung_area_fraction", "right_left_volume_ratio",
                                                        "right_left_area_ratio", "both", "right", "left",
                                                        "volume_ml", "voxel_count", "pixel_count", "ok",
                                                        "hu_plausibility")}  # (a details key, not a flag)
    for module in ("hu_check.py", "laterality.py"):  # flags qc.py takes from its helpers (issue 12)
        text = (REPO / "LungSegLib" / module).read_text(encoding="utf-8")
        flags |= set(re.findall(r'flags\.append\("([a-z][a-z0-9_.]+)"\)', text))
    assert len(flags) >= 8 and flags <= set(QC_TEXT), flags - set(QC_TEXT)


def test_warnings_and_qc_flags_read_as_sentences():
    from LungSegLib.wording import result_notes

    notes = result_notes(["thick slices (5.0 mm): partial-volume effects, volumes are approximate"],
                         ["hu_calibration_off", "mask_touches_border_possibly_truncated"])
    assert notes.splitlines() == [
        "Input: Thick slices (5.0 mm): partial-volume effects, volumes are approximate.",
        "Check: Air and soft tissue are not where Hounsfield units put them: check the CT calibration.",
        "Check: The lungs touch the edge of the image: they may be cut off."]
    assert result_notes([], []) == ""
    assert "_" not in notes


def test_every_logic_method_the_widget_calls_exists():
    """The widget runs only inside Slicer: a typo in a logic call would surface only on a click."""
    logic = module_class(ast.parse((REPO / "LungSeg" / "LungSegModuleLib" / "logic.py").read_text()), "LungSegLogic")
    methods = {n.name for n in logic.body if isinstance(n, ast.FunctionDef)} | {"getParameterNode", "lastResult"}
    widget = module_class(ast.parse(MODULE_FILE.read_text()), "LungSegWidget")
    used = {n.attr for n in ast.walk(widget) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute)
            and n.value.attr == "logic" and isinstance(n.value.value, ast.Name) and n.value.value.id == "self"}
    assert used and used <= methods, used - methods
    own = {n.name for n in widget.body if isinstance(n, ast.FunctionDef)}
    called = {n.attr for n in ast.walk(widget) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
              and n.value.id == "self" and n.attr[0].islower() and n.attr.startswith(("on", "cancel", "_finish",
                                                                                         "show", "ensure", "update"))}
    assert called <= own | {"showResults"}, called - own
