"""The judge contract and its registry: a judge kind (a judge YAML's `kind:`) names an EpisodeJudge subclass.

Built-in kinds are `grounded` (offline formulas over privileged simulator state) and `vlm` (a chat model behind an
OpenAI-compatible endpoint); third-party packages add kinds through the `vlascore.judges` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from vlascore.judging.endpoint import Endpoint
from vlascore.registry import Registry

if TYPE_CHECKING:
    from vlascore.judging.definitions import JudgeSpec
    from vlascore.judging.inputs import JudgeInput
    from vlascore.judging.judgement import Judgement, JudgementFile, Mode
    from vlascore.store import LoadedRun


@dataclass(frozen=True)
class JudgeContext:
    """Everything a judge pass may configure besides the judge definition, built once by the caller."""

    endpoint: Endpoint = Endpoint()
    """Where a judge that calls a model sends its requests (and the model's name)."""
    cache_dir: str | Path | None = None
    """Verdict cache [default: $VLASCORE_CACHE_DIR or ~/.cache/vlascore/judgements]."""
    use_cache: bool = True
    """Read and fill the cache."""
    kb_dir: str | Path | None = None
    """Retrieval knowledge base [default: judges/kb]."""
    retrieval: bool | None = None
    """False: no few-shot example, whatever the judge definition says."""
    price: tuple[float, float] | None = None
    """USD per 1M prompt and completion tokens [default: judges/pricing/prices.yaml]."""


class EpisodeJudge(ABC):
    """Judges one episode at a time. `judge` may run in several threads at once."""

    calls_model: ClassVar[bool] = False
    """Whether verdicts come from a model behind an endpoint (then a pass needs `--judge-model`)."""
    reproducible: ClassVar[bool] = False
    """Offline and deterministic: a leaderboard re-runs such verdicts and refuses submitted ones that differ."""

    spec: JudgeSpec
    mode: Mode
    model: str | None = None

    @classmethod
    @abstractmethod
    def for_run(cls, spec: JudgeSpec, mode: Mode, run: LoadedRun, context: JudgeContext) -> EpisodeJudge:
        """The judge for this run (its tasks, its policy kind); raises JudgeError when it cannot judge the run."""

    @abstractmethod
    def judge(self, inp: JudgeInput, use_cache: bool = True) -> Judgement:
        """The verdict on one episode; a failure is a Judgement with status `failed`, never a score."""

    def cached(self, inp: JudgeInput) -> Judgement | None:
        """The verdict of an earlier pass, when it can be served without work (no frames read, no request made)."""
        return None

    def prime(self, previous: JudgementFile) -> None:
        """Learn from the previous pass of the same judge version and model (e.g. where its verdicts are cached)."""
        return None

    def close(self) -> None:
        """Release what the judge holds (an endpoint's connections) once its pass is over."""
        return None


JUDGES: Registry[type[EpisodeJudge]] = Registry("judge kind", "vlascore.judges", base=EpisodeJudge)
JUDGES.register("grounded", "vlascore.judging.grounded:GroundedJudge")
JUDGES.register("vlm", "vlascore.judging.vlm:VlmJudge")
