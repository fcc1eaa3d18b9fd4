"""vlascore: score Vision-Language-Action robot policies.

Importing this package pulls in only the core dependencies; simulators, torch and model code load
lazily inside the backend or adapter that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from vlascore.store import LoadedRun

__all__ = ["__version__", "load_run"]


def load_run(path: Any) -> LoadedRun:
    """Open a run directory; `.episodes` and `.steps` are pandas DataFrames."""
    from vlascore.store import load_run as _load_run

    return _load_run(path)
