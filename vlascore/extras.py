"""Optional dependencies: import them on demand, failing with the extra that provides them."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# module -> extra that installs it
EXTRA_OF: dict[str, str] = {
    "mani_skill": "sim",
    "sapien": "sim",
    "gymnasium": "sim",
    "torch": "sim",
    "lmms_eval": "qa",
    "transformers": "models",
    "ray": "ray",
    "websockets": "serve",
    "msgpack": "serve",
    "pyarrow": "data",
    "av": "data",
    "PIL": "data",
    "mlflow": "track",
}


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def require(module: str, extra: str | None = None, purpose: str = "") -> ModuleType:
    """Import `module` or raise MissingExtraError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = extra or EXTRA_OF.get(module.split(".")[0], "")
        why = f" (needed for {purpose})" if purpose else ""
        hint = f"pip install 'vlascore[{extra}]'" if extra else f"pip install {module.split('.')[0]}"
        raise MissingExtraError(
            f"`{module}` is not installed{why}: {hint}. Run `vlascore doctor` to check the setup."
        ) from exc


def available(module: str) -> bool:
    """True when `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
