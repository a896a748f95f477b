"""The LungSeg Slicer module's own code beside LungSeg.py (Slicer's <Module>Lib convention; the
qt-free core is the top-level LungSegLib): the parameter node, the Logic and the built-in self-test."""
