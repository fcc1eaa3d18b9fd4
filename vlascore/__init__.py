"""vlascore: score Vision-Language-Action robot policies.

Importing this package pulls in only the core dependencies; simulators, torch and model code load
lazily inside the backend or adapter that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vlascore._version import __version__

if TYPE_CHECKING:
    from vlascore.rundata import RunData

__all__ = ["__version__", "evaluate", "load_run"]


def load_run(path: Any) -> RunData:
    """Open a run directory: `.run` (how it was made), `.episodes`, `.steps` and `.judgements` (pandas
    DataFrames), `.frames(episode_id)`, `.results` (success rates and VLA Scores with their intervals)."""
    from vlascore.rundata import RunData

    return RunData(path)


def evaluate(policy: Any, **options: Any) -> RunData:
    """Run a policy object (an Adapter, or a function `fn(observation, instruction) -> action`) on a suite and
    return the scored run; see vlascore.evaluation.evaluate for the options (suite, tasks, episodes, out...)."""
    from vlascore.evaluation import evaluate as _evaluate

    return _evaluate(policy, **options)
