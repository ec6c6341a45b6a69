"""Not a Python package: ``api/`` holds the ``.proto`` files (the generated Python is
``pycontainerd/api``).

This file exists for one case. A script run from the folder that holds a clone named
``pycontainerd`` (as ``git clone`` names it) has that folder first on ``sys.path``, so
``import pycontainerd`` finds the clone's top directory — a namespace package, since it has
no ``__init__.py`` — before an editable install (whose import hook comes after the path
search). ``pycontainerd.api`` then resolves here instead of to the real package, and the
import would fail far away (``cannot import name 'container_pb2' ... (unknown location)``).
Say what happened instead.
"""

import os as _os

_clone = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))

raise ImportError(
    f"pycontainerd: Python imported the folder {_clone} (a source tree of pycontainerd, found "
    f"in {_os.path.dirname(_clone)}, the folder of your script or the current directory) instead "
    "of the installed package. Run the script from another folder, run Python with -P "
    "(or PYTHONSAFEPATH=1) so that the script's folder is not searched first, or install "
    f"pycontainerd without -e (pip install {_clone})",
    name=__name__,
)
