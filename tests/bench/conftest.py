"""Make the repository's ``benchmarks`` package importable by these tests.

The benchmarks are not part of the installed package, and pytest runs with
``--import-mode=importlib`` (no ``sys.path`` changes of its own).
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
