"""The policy contract: one call, observation + instruction -> PolicyStep.

Adapters declare their action convention and whether they reason; the runner checks the declaration
against the task before the first step, so a convention mismatch fails loudly instead of scoring noise.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlascore.backends.base import Observation
from vlascore.suites import ActionSpace, TaskSpec


@dataclass
class PolicyStep:
    """What a policy returns for one call."""

    action: np.ndarray
    """Shape (dim,) or, for chunked policies, (chunk, dim); executed in order."""
    reasoning: str | None = None
    """Free-text reasoning for this call (reasoning VLAs)."""
    intention: str | None = None
    """Short statement of the current subgoal."""


@dataclass(frozen=True)
class EpisodeContext:
    """What an adapter learns at the start of an episode."""

    task: TaskSpec
    seed: int
    episode_id: str


@dataclass(frozen=True)
class Question:
    """One multimodal QA request (`vlascore qa`): the benchmark's prompt and images, answered with text."""

    prompt: str
    """The benchmark's text prompt (lmms-eval's doc_to_text), without image placeholders."""
    images: tuple[Any, ...] = ()
    """PIL images in the order the benchmark gives them (none for a text-only question)."""
    max_new_tokens: int = 128
    until: tuple[str, ...] = ()
    """Stop strings: the answer ends before the first one."""
    temperature: float = 0.0
    benchmark: str = ""
    """vlascore benchmark name (mmmu, textvqa...)."""
    doc_id: int = -1
    """Row of the question in the benchmark's split (0-based)."""


class NoVLMSideError(NotImplementedError):
    """The adapter has no language side that answers questions."""


class ConventionError(ValueError):
    """The adapter's declared action convention does not match the task's."""


class Adapter(ABC):
    """Base class for policies. Subclasses set the class attributes and implement `act`."""

    name: str = ""
    action_space: ActionSpace = ActionSpace()
    """The convention this adapter's actions follow."""
    chunk_size: int = 1
    """Most actions returned per call (a chunk of n predicted actions)."""
    execute_steps: int | None = None
    """How many of a chunk's actions run before the next call (k <= n; None: all). Receding-horizon control
    predicts n and executes k < n."""
    reasons: bool = False
    """Whether the policy produces reasoning text (reasoning VLA) or not (specialist)."""
    uses_privileged_state: bool = False
    """Whether the policy reads simulator ground truth (scripted experts only)."""
    extras: tuple[str, ...] = ()
    """pip extras of vlascore the adapter imports (`models`, `serve`), shown by `vlascore models list`."""
    needs: str = ""
    """What else it needs, in words (a checkpoint download, a GPU, another package), for `vlascore models list`."""
    acts: bool = True
    """Whether it controls a robot (False: a QA-only model, refused by `vlascore run`)."""
    answers_questions: bool = False
    """Whether `answer` works: the model's VLM side answers multimodal QA (`vlascore qa`)."""
    speaks_task_convention: bool = False
    """Whether it emits each task's own convention (it sets `action_space` from EpisodeContext.task in `reset`),
    so nothing is converted: baselines such as `random` that have no convention of their own."""

    def __init__(self, **config: Any) -> None:
        self.config = config

    def reset(self, context: EpisodeContext) -> None:  # noqa: B027 - optional hook
        """Called before each episode."""

    @abstractmethod
    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        """Return the next action (or chunk) for `obs`."""

    def act_batch(self, observations: list[Observation], instructions: list[str]) -> list[PolicyStep]:
        """Independent calls in one go (adapter checks, servers). Models override it with one batched forward;
        the default loops, which is right for policies whose calls depend on episode state."""
        return [self.act(o, i) for o, i in zip(observations, instructions, strict=True)]

    def shared_state(self) -> list[Any]:
        """Objects a `fork` shares with this instance instead of copying them: the model (weights, processor,
        tokenizer). Everything else an adapter holds counts as per-episode state and is copied."""
        return []

    def fork(self) -> Adapter:
        """Another instance for a concurrent stream of episodes: a shared policy keeps one fork per environment. It
        shares `shared_state()` with this instance (one copy of the weights) and copies everything else, so forks
        never see each other's episode state. Closing a fork releases only what it owns."""
        memo: dict[int, Any] = {id(obj): obj for obj in self.shared_state()}
        return copy.deepcopy(self, memo)

    def batches_forks(self) -> bool:
        """Whether `act_forks` answers several forks with one batched call (True when a subclass overrides it)."""
        return type(self).act_forks is not Adapter.act_forks

    def act_forks(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep]:
        """The next step of several forks of this adapter (one call each, forks[i] seeing observations[i]), answered
        together. Models override it with one batched forward over every observation followed by each fork's own
        per-episode post-processing (the gripper). An override must leave every fork's state unchanged when it
        raises: the caller then asks each fork alone, so that only the failing call fails its episode."""
        return [f.act(o, i) for f, o, i in zip(forks, observations, instructions, strict=True)]

    def act_each(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep | Exception]:
        """`act_forks` with each call's failure kept to its own fork: a PolicyStep or the exception per fork. A
        batched call that raises is repeated fork by fork (its contract leaves the forks' state unchanged), so one bad
        observation fails only its own episode, as it would have without batching. Proxies of a shared policy
        override it to send every call at once."""
        batched = self.batches_forks()
        if batched and len(forks) > 1:
            try:
                steps = self.act_forks(forks, observations, instructions)
                if len(steps) != len(forks):
                    raise ValueError(f"act_forks of {len(forks)} forks returned {len(steps)} steps")
                return list(steps)
            except Exception:  # noqa: BLE001 - find which call fails by asking each fork alone
                pass
        out: list[PolicyStep | Exception] = []
        for fork, obs, text in zip(forks, observations, instructions, strict=True):
            try:
                out.append(self.act_forks([fork], [obs], [text])[0] if batched else fork.act(obs, text))
            except Exception as exc:  # noqa: BLE001 - the caller records it as that episode's failure
                out.append(exc)
        return out

    def answer(self, question: Question) -> str:
        """The model's VLM side: a text answer to one benchmark question (`vlascore qa`)."""
        raise NoVLMSideError(
            f"adapter {self.name!r} has no VLM side that answers questions; `vlascore qa` needs one "
            "(see `vlascore models list`, column QA): for a VLA built on a VLM, score the VLM with "
            "`--model vlm -M path=BACKBONE`"
        )

    def info(self) -> dict[str, Any]:
        """The declaration stored with the run."""
        return {
            "action_space": self.action_space.model_dump(),
            "chunk_size": self.chunk_size,
            "execute_steps": self.execute_steps,
            "reasons": self.reasons,
            "uses_privileged_state": self.uses_privileged_state,
            **({"speaks_task_convention": True} if self.speaks_task_convention else {}),
        }

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


def check_chunking(adapter: Adapter) -> None:
    """ConventionError when the declared chunk sizes make no sense (the action space is checked per task by
    `conventions.plan_conversion`)."""
    problems = []
    if adapter.chunk_size < 1:
        problems.append(f"chunk_size must be >= 1, got {adapter.chunk_size}")
    if adapter.execute_steps is not None and not 1 <= adapter.execute_steps <= adapter.chunk_size:
        problems.append(f"execute_steps must be in 1..chunk_size={adapter.chunk_size}, got {adapter.execute_steps}")
    if problems:
        raise ConventionError(f"adapter {adapter.name!r}: " + "; ".join(problems))


class InvalidActionError(ValueError):
    """A policy output that cannot be sent to the simulator."""


def validate_actions(step: PolicyStep, adapter: Adapter) -> np.ndarray:
    """Check a PolicyStep's actions; return them as a (chunk, dim) float64 array."""
    if not isinstance(step, PolicyStep):
        raise InvalidActionError(f"act() must return a PolicyStep, got {type(step).__name__}")
    try:
        actions = np.asarray(step.action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError(f"action is not numeric: {exc}") from exc
    dim = adapter.action_space.dim
    if actions.ndim == 1:
        actions = actions[None, :]
    if actions.ndim != 2 or actions.shape[1] != dim or not 1 <= actions.shape[0] <= adapter.chunk_size:
        raise InvalidActionError(
            f"action has shape {tuple(np.shape(step.action))}; expected ({dim},) or (k, {dim}) with "
            f"1 <= k <= chunk_size={adapter.chunk_size}"
        )
    if not np.all(np.isfinite(actions)):
        raise InvalidActionError(f"action contains NaN or inf: {actions.tolist()}")
    return actions
