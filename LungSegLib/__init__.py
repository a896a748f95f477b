"""LungSegLib: lung segmentation and lung measurement for chest CT and chest radiographs.

Plain Python (MONAI + PyTorch, SimpleITK, numpy, scikit-image); never imports Qt or the Slicer app.
The one road for the data is :func:`LungSegLib.pipeline.run_case` (read -> validate -> engine ->
post-process -> measure) and :func:`LungSegLib.pipeline.segment_image` for arrays already in memory.
"""

__version__ = "0.1.0"

from .errors import LungSegError  # noqa: E402,F401
