"""`ecot`: Embodied Chain-of-Thought OpenVLA (Embodied-CoT/ecot-openvla-7b-bridge), in process.

The OpenVLA architecture, processor and action tokens, trained to reason before acting. The prompt is the
Vicuna chat format ending where the reasoning begins: `{system} USER: What action should the robot take to
{instruction}? ASSISTANT: TASK:`; greedy generation (up to `max_new_tokens`, default 1024) writes tagged
reasoning (TASK, PLAN, VISIBLE OBJECTS, SUBTASK REASONING, SUBTASK, MOVE REASONING, MOVE, GRIPPER POSITION),
then `ACTION:` and the `dim` action tokens, then the end token. The reasoning is returned as
`PolicyStep.reasoning` (from "TASK:", without the action tag), the current SUBTASK and MOVE as `intention`.

`-M reason_every=N` regenerates the reasoning only every N steps of an episode: in between, the last
reasoning is put in the prompt up to `ACTION:` and only the action tokens are generated (reasoning reused across
steps: a large speed-up, at the cost of acting on stale reasoning).
"""

from __future__ import annotations

import re
from typing import Any

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.adapters.openvla import OpenVLAAdapter
from vlascore.backends.base import Observation

SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
TAGS = (
    "TASK",
    "PLAN",
    "VISIBLE OBJECTS",
    "SUBTASK REASONING",
    "SUBTASK",
    "MOVE REASONING",
    "MOVE",
    "GRIPPER POSITION",
    "ACTION",
)
# a tag is a whole word followed by ':' (so SUBTASK: is not TASK:); longer alternatives first
_TAG_RE = re.compile(r"(?<![A-Za-z])(" + "|".join(sorted(TAGS, key=len, reverse=True)) + r"):")


def parse_reasoning(text: str) -> dict[str, str]:
    """Tag -> text up to the next tag (the first occurrence of each tag wins)."""
    marks = list(_TAG_RE.finditer(text))
    parts: dict[str, str] = {}
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        end = nxt.start() if nxt is not None else len(text)
        parts.setdefault(m.group(1), text[m.end() : end].strip())
    return parts


def intention_of(parts: dict[str, str]) -> str | None:
    """The current subgoal in words: `SUBTASK; MOVE`, or whichever of them the reasoning has."""
    found = [parts[t] for t in ("SUBTASK", "MOVE") if parts.get(t)]
    return "; ".join(found) or None


class ECoTAdapter(OpenVLAAdapter):
    """ECoT on Bridge (`-M path=` for the other ECoT checkpoints). Extra options: `max_new_tokens` (reasoning
    budget, default 1024), `reason_every` (default 1: reason at every step), `empty_token` (appended after
    `ACTION:` when the reasoning is reused; auto: the tokenizer's '▁')."""

    name = "ecot"
    default_path = "Embodied-CoT/ecot-openvla-7b-bridge"
    reasons = True
    needs = (
        "checkpoint Embodied-CoT/ecot-openvla-7b-bridge (15 GB download); a CUDA GPU with >= 16 GB for "
        "bfloat16; ~1-3 s per step to write its reasoning"
    )

    def configure(self, *, reason_every: int = 1, **options: Any) -> None:
        self.reason_every = int(reason_every)
        if self.reason_every < 1:
            raise ValueError(f"reason_every must be >= 1, got {reason_every}")
        self._held: tuple[str, str | None] | None = None  # (reasoning, intention) being reused
        self._age = 0
        super().configure(**options)

    def prompt(self, instruction: str) -> str:
        task = self.instruction_text(instruction)
        return f"{SYSTEM_PROMPT} USER: What action should the robot take to {task}? ASSISTANT: TASK:"

    def budget(self) -> int:
        return 1024

    def reasoned(self, ids: list[int]) -> PolicyStep:
        text_ids, action_ids = self.split_actions(ids)
        body = self.tokenizer.decode(text_ids, skip_special_tokens=True).strip()
        reasoning = f"TASK: {body}"
        reasoning = re.sub(r"\s*(?<![A-Za-z])ACTION:\s*$", "", reasoning)
        return PolicyStep(
            action=self.to_action(action_ids), reasoning=reasoning, intention=intention_of(parse_reasoning(reasoning))
        )

    def predict(self, images: list[Any], instructions: list[str]) -> list[PolicyStep]:
        # the prompt ends inside the answer ("TASK:"), where training text continued with a word, not '▁'
        outputs = self.generate(images, [self.prompt(i) for i in instructions], append_empty=False)
        return [self.reasoned(ids) for ids in outputs]

    def predict_held(self, images: list[Any], instructions: list[str], reasoning: str) -> list[PolicyStep]:
        """Actions conditioned on given reasoning: the prompt runs on through it to `ACTION:`."""
        body = reasoning.removeprefix("TASK:").strip()
        prompts = [f"{self.prompt(i)} {body} ACTION:" for i in instructions]
        outputs = self.generate(images, prompts, max_new_tokens=self.stats.dim + 1)
        return [PolicyStep(action=self.to_action(self.split_actions(ids)[1])) for ids in outputs]

    def reset(self, context: EpisodeContext) -> None:
        super().reset(context)
        self._held, self._age = None, 0

    def batches_forks(self) -> bool:
        return self.reason_every == 1  # otherwise each call needs the fork's held reasoning: one call per fork

    def act_forks(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep]:
        if self.reason_every == 1:
            return super().act_forks(forks, observations, instructions)
        return Adapter.act_forks(self, forks, observations, instructions)

    def act_batch(self, observations: list[Observation], instructions: list[str]) -> list[PolicyStep]:
        if self.reason_every == 1:
            return super().act_batch(observations, instructions)
        return [self.act(o, i) for o, i in zip(observations, instructions, strict=True)]  # each step needs the last

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        if self.reason_every == 1:
            return self.act_batch([obs], [instruction])[0]
        images = self.images([obs])
        if self._held is None or self._age >= self.reason_every:
            step = self.predict(images, [instruction])[0]
            self._held, self._age = (step.reasoning or "", step.intention), 0
        else:
            step = self.predict_held(images, [instruction], self._held[0])[0]
            step.reasoning, step.intention = self._held
        self._age += 1
        return self.postprocess([step])[0]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "reason_every": self.reason_every}
