"""Render the LungSeg module panel (LungSeg/Resources/UI/LungSeg.ui) offscreen with PySide6 to a PNG.

    QT_QPA_PLATFORM=offscreen python Testing/render_panel.py [docs/panel.png]

Slicer's widgets (qMRML*, ctk*) exist only inside Slicer; here they are stand-ins with the same class
names and the .ui properties they use, so QUiLoader builds the real layout. The results table shows
the measurements of the HU engine on the bundled CIP sample (samples/ct-64.nrrd) when it is present.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Property, QFile, Qt, qInstallMessageHandler  # noqa: E402
from PySide6.QtGui import QStandardItem, QStandardItemModel  # noqa: E402
from PySide6.QtUiTools import QUiLoader  # noqa: E402
from PySide6.QtWidgets import (QApplication, QComboBox, QDoubleSpinBox, QGroupBox, QHBoxLayout,  # noqa: E402
                               QLineEdit, QSlider, QTableView, QWidget)

REPO = Path(__file__).resolve().parents[1]
UI_FILE = REPO / "LungSeg" / "Resources" / "UI" / "LungSeg.ui"


def _prop(kind, name, default):
    """A Qt property stored in a Python attribute (enough for QUiLoader to apply the .ui values)."""
    attr = f"_{name}"
    return Property(kind, lambda self: getattr(self, attr, default), lambda self, v: setattr(self, attr, v))


class qMRMLWidget(QWidget):
    pass


class ctkCollapsibleButton(QGroupBox):
    text = Property(str, QGroupBox.title, QGroupBox.setTitle)
    collapsed = _prop(bool, "collapsed", False)


class qMRMLNodeComboBox(QComboBox):
    nodeTypes = _prop("QStringList", "nodeTypes", [])
    noneEnabled = _prop(bool, "noneEnabled", False)
    addEnabled = _prop(bool, "addEnabled", True)
    removeEnabled = _prop(bool, "removeEnabled", True)
    renameEnabled = _prop(bool, "renameEnabled", False)
    showChildNodeTypes = _prop(bool, "showChildNodeTypes", True)
    noneDisplay = _prop(str, "noneDisplay", "None")


class ctkPathLineEdit(QLineEdit):
    pass


class ctkSliderWidget(QWidget):
    """Slider + spin box, as ctkSliderWidget draws it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.slider, self.spin = QSlider(Qt.Horizontal), QDoubleSpinBox()
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.setRange(0, 1000)
        self.spin.valueChanged.connect(self._sync)

    def _sync(self, _=None):
        span = (self.spin.maximum() - self.spin.minimum()) or 1.0
        self.slider.setValue(int(1000 * (self.spin.value() - self.spin.minimum()) / span))

    decimals = Property(int, lambda s: s.spin.decimals(), lambda s, v: s.spin.setDecimals(v))
    singleStep = Property(float, lambda s: s.spin.singleStep(), lambda s, v: s.spin.setSingleStep(v))
    minimum = Property(float, lambda s: s.spin.minimum(), lambda s, v: (s.spin.setMinimum(v), s._sync()))
    maximum = Property(float, lambda s: s.spin.maximum(), lambda s, v: (s.spin.setMaximum(v), s._sync()))
    value = Property(float, lambda s: s.spin.value(), lambda s, v: s.spin.setValue(v))
    suffix = Property(str, lambda s: s.spin.suffix(), lambda s, v: s.spin.setSuffix(v))


class qMRMLTableView(QTableView):
    pass


STAND_INS = (qMRMLWidget, ctkCollapsibleButton, qMRMLNodeComboBox, ctkPathLineEdit, ctkSliderWidget, qMRMLTableView)


def _quiet_expected_warnings(mode, context, message):
    # the .ui connects Slicer-only signals (mrmlSceneChanged); stand-ins do not have them
    if "mrmlSceneChanged" in message or "QObject::connect:  (" in message or "propagateSizeHints" in message:
        return
    sys.stderr.write(message + "\n")


def load_panel(ui_file=UI_FILE):
    """(app, panel) with the .ui loaded through QUiLoader and the stand-ins registered."""
    qInstallMessageHandler(_quiet_expected_warnings)
    app = QApplication.instance() or QApplication([])
    loader = QUiLoader()
    for cls in STAND_INS:
        loader.registerCustomWidget(cls)
    f = QFile(str(ui_file))
    f.open(QFile.ReadOnly)
    try:
        panel = loader.load(f)
    finally:
        f.close()
    if panel is None:
        raise RuntimeError(f"QUiLoader could not load {ui_file}: {loader.errorString()}")
    return app, panel


def sample_table_rows():
    """(columns, rows) of the HU engine's measurements on the bundled CIP sample, or None."""
    sample = REPO / "samples" / "ct-64.nrrd"
    if not sample.exists():
        return None
    sys.path.insert(0, str(REPO))
    from LungSegLib.params import Parameters
    from LungSegLib.pipeline import run_case
    from LungSegLib.wording import STRUCTURE_NAMES, column_title, result_notes

    result = run_case(sample, Parameters(engine="hu"))
    columns = ["structure", "volume_ml", "weight_g", "gas_volume_ml", "mean_hu"]
    units = result.measurements["units"]
    titles = [column_title(c, units.get(c, "")) for c in columns]  # the headers the table node carries
    rows = [[STRUCTURE_NAMES[name]] + [f"{values[c]:.1f}" for c in columns[1:]]
            for name, values in result.measurements["structures"].items()]
    return titles, rows, result_notes(result.warnings, result.qc["flags"])


def fill_for_picture(panel):
    """Show what a user sees after a run on the sample: selections, a finished status, the table."""
    panel.findChild(QComboBox, "inputVolumeSelector").addItem("ct-64")
    for name in ("outputSegmentationSelector", "outputTableSelector"):
        combo = panel.findChild(QComboBox, name)
        combo.addItem({"outputSegmentationSelector": "ct-64 lungs",
                       "outputTableSelector": "ct-64 lung measurements"}[name])
    panel.findChild(QWidget, "applyButton").setEnabled(True)
    panel.findChild(QWidget, "progressBar").hide()
    data = sample_table_rows()
    if data:
        columns, rows, notes = data
        panel.findChild(QWidget, "statusLabel").setText("Done with engine hu.")
        panel.findChild(QWidget, "qcLabel").setText(notes or "No input warnings and no quality-control findings.")
        panel.findChild(QWidget, "show3DButton").setEnabled(True)
        model = QStandardItemModel(len(rows), len(columns), panel)
        model.setHorizontalHeaderLabels(columns)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                model.setItem(r, c, QStandardItem(text))
        view = panel.findChild(QTableView, "resultsTableView")
        view.setModel(model)
        view.resizeColumnsToContents()
        view.verticalHeader().hide()
        panel._model = model  # keep alive


def render_panel(out_png, width=440):
    app, panel = load_panel()
    fill_for_picture(panel)
    panel.resize(width, panel.sizeHint().height())
    panel.show()
    app.processEvents()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if not panel.grab().save(str(out_png)):
        raise RuntimeError(f"could not save {out_png}")
    return out_png


if __name__ == "__main__":
    print(render_panel(sys.argv[1] if len(sys.argv) > 1 else REPO / "docs" / "panel.png"))
