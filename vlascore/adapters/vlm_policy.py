"""Any transformers image-text-to-text model as a policy: prompted with the task's action convention, it answers
with reasoning, an intention and an action.

Two answer formats (`-M format=...`):

- `json` (default): one JSON object `{"reasoning": ..., "intention": ..., "action": [dim numbers]}` in the
  task's normalised action space. Off-the-shelf chat VLMs (Qwen2.5-VL, SmolVLM, Llava...) can follow it zero-shot.
- `tokens`: text (`Reasoning: ...`, `Intention: ...`) then `dim` discretised action tokens at the vocabulary's
  tail (ActionTokenizer), the output of a checkpoint fine-tuned OpenVLA-style.

A reply that holds no usable action raises ReplyError quoting the reply, so the runner records the episode as
errored with the reason: a policy that cannot speak the convention is a failure, never a silent zero action.
The prompt is a Jinja template (tasks/prompts/vlm_policy.j2, or `-M prompt=PATH`) filled from the task.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import jinja2
import numpy as np
from pydantic import ValidationError

from vlascore.adapters.action_tokens import ActionTokenizer
from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep, Question
from vlascore.adapters.device import EpisodeRNG
from vlascore.adapters.hf import HFAdapter, load_model, load_processor, new_tokens, stop_token_ids
from vlascore.backends.base import Observation
from vlascore.extras import require
from vlascore.paths import data_dir
from vlascore.registry import did_you_mean
from vlascore.suites import ActionSpace

FORMATS = ("json", "tokens")
OPTIONS = (
    "format",
    "max_new_tokens",
    "temperature",
    "chat_template",
    "prompt",
    "action_space",
    "bins",
    "action_vocab_size",
)
"""The options this adapter adds to HFAdapter's."""
DEFAULT_PROMPT = "prompts/vlm_policy.j2"
"""The default template, relative to the tasks/ data folder."""
QUOTE_CHARS = 300
"""How much of an unusable reply an error quotes."""

_ROTATIONS: dict[str, list[tuple[str, str]]] = {
    "euler_xyz": [("roll", "about x"), ("pitch", "about y"), ("yaw", "about z")],
    "euler_rpy": [
        ("roll", "about the fixed x axis"),
        ("pitch", "about the fixed y axis"),
        ("yaw", "about the fixed z axis"),
    ],
    "axis_angle": [
        ("rx", "axis-angle x component"),
        ("ry", "axis-angle y component"),
        ("rz", "axis-angle z component"),
    ],
    "quaternion": [("qw", "quaternion w"), ("qx", "quaternion x"), ("qy", "quaternion y"), ("qz", "quaternion z")],
    "rot6d": [(f"r{i + 1}", f"6D rotation entry {i + 1}") for i in range(6)],
    "none": [],
}
_LABEL = re.compile(r"\b(reasoning|intention|action)\s*:", re.IGNORECASE)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


class ReplyError(ValueError):
    """A model reply that holds no usable action; the message quotes (the start of) the reply."""


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    text = text.strip()
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text) - limit} more characters)"


def action_dimensions(space: ActionSpace) -> list[dict[str, str]]:
    """One {name, meaning} per action entry, from the convention (the gripper is last)."""
    arm = space.dim - 1
    delta = space.mode.endswith("delta")
    if space.mode.startswith("ee_"):
        move = "end-effector translation along" if delta else "end-effector target position on"
        turn = "end-effector rotation" if delta else "end-effector target orientation,"
        names = [(axis, f"{move} {axis}") for axis in "xyz"]
        names += [
            (n, f"{turn} {m}" + (" (intrinsic euler xyz)" if space.rotation == "euler_xyz" else ""))
            for n, m in _ROTATIONS.get(space.rotation, [])
        ]
    else:
        names = [
            (f"joint{i + 1}", f"{'change of' if delta else 'target position of'} joint {i + 1}") for i in range(arm)
        ]
    if len(names) != arm:  # a convention the names do not cover: say less rather than something wrong
        names = [(f"a{i + 1}", f"arm command {i + 1}") for i in range(arm)]
    opens, closes = space.gripper_open, -space.gripper_open
    gripper = f"{opens} opens the gripper, {closes} closes it"
    return [{"name": n, "meaning": m} for n, m in names] + [{"name": "gripper", "meaning": gripper}]


def load_template(path: str | Path | None = None) -> tuple[jinja2.Template, str, str]:
    """(compiled template, where it came from, sha256 of its text) for `path` or the built-in prompt."""
    file = Path(path) if path else data_dir("tasks") / DEFAULT_PROMPT
    try:
        text = file.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read the prompt template {file}: {exc}") from exc
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)
    try:
        template = env.from_string(text)
    except jinja2.TemplateError as exc:
        raise ValueError(f"prompt template {file} is not valid Jinja: {exc}") from exc
    where = DEFAULT_PROMPT if path is None else str(file)
    return template, where, hashlib.sha256(text.encode()).hexdigest()


def render_prompt(
    template: jinja2.Template, instruction: str, space: ActionSpace, fmt: str, control_mode: str = ""
) -> str:
    """The text part of the prompt: the instruction, the action convention and the answer format."""
    dims = action_dimensions(space)
    try:
        text = template.render(
            instruction=instruction,
            format=fmt,
            control_mode=control_mode or space.mode,
            space=space,
            dims=dims,
            names=[d["name"] for d in dims],
            gripper_open=space.gripper_open,
            gripper_close=-space.gripper_open,
        )
    except jinja2.TemplateError as exc:
        raise ValueError(f"cannot render the vlm prompt template: {exc}") from exc
    return text.strip()


def split_labelled(text: str) -> tuple[str | None, str | None]:
    """(reasoning, intention) from `Reasoning: ... Intention: ...` text; unlabelled text is all reasoning."""
    marks = list(_LABEL.finditer(text))
    if not marks:
        return (text.strip() or None), None
    parts: dict[str, str] = {}
    for mark, nxt in zip(marks, [*marks[1:], None], strict=True):
        body = text[mark.end() : nxt.start() if nxt else len(text)].strip()
        parts.setdefault(mark.group(1).lower(), body)  # the first of a repeated label counts
    reasoning = parts.get("reasoning", text[: marks[0].start()])  # unlabelled text before the labels
    return reasoning.strip() or None, parts.get("intention") or None


def _first_object(text: str) -> dict[str, Any] | None:
    """The first JSON object with an `action` key (else the first object) anywhere in `text`: code fences,
    prose around it and trailing commas are tolerated."""
    decoder, first = json.JSONDecoder(), None
    for brace in re.finditer(r"\{", text):
        rest = text[brace.start() :]
        for candidate in (rest, _TRAILING_COMMA.sub(r"\1", rest)):
            try:
                obj, _ = decoder.raw_decode(candidate)
            except ValueError:
                continue
            if isinstance(obj, dict):
                obj = {str(k).strip().lower(): v for k, v in obj.items()}
                if "action" in obj:
                    return obj
                first = first or obj
            break
    return first


def _text_field(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text.strip() or None


def parse_json_reply(text: str, dim: int) -> PolicyStep:
    """A JSON reply -> PolicyStep; ReplyError (quoting the reply) when it holds no `dim`-number action."""
    obj = _first_object(text)
    if obj is None:
        raise ReplyError(f"the model's reply holds no JSON object; reply: {quote(text)}")
    if "action" not in obj:
        raise ReplyError(
            f'the model\'s JSON has no "action" key (keys: {", ".join(obj) or "none"}); reply: {quote(text)}'
        )
    raw = obj["action"]
    try:
        action = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ReplyError(f'the model\'s "action" is not a list of numbers; reply: {quote(text)}') from None
    if action.ndim == 2 and action.shape[0] == 1:
        action = action[0]
    if action.shape != (dim,):
        raise ReplyError(
            f'the model\'s "action" has shape {action.shape}, expected {dim} numbers; reply: {quote(text)}'
        )
    if not np.all(np.isfinite(action)):
        raise ReplyError(f'the model\'s "action" holds NaN or inf; reply: {quote(text)}')
    return PolicyStep(action, reasoning=_text_field(obj.get("reasoning")), intention=_text_field(obj.get("intention")))


def parse_token_reply(
    ids: Sequence[int], tokens: ActionTokenizer, dim: int, decode: Callable[[list[int]], str]
) -> PolicyStep:
    """Generated ids -> PolicyStep: text before the first action token, then `dim` consecutive action tokens."""
    ids = [int(i) for i in ids]
    is_action = tokens.is_action_token(np.asarray(ids, dtype=np.int64)) if ids else np.zeros(0, dtype=bool)
    start = int(np.argmax(is_action)) if is_action.any() else -1

    def shown() -> str:  # text as text, action tokens as <action:ID>
        pieces: list[str] = []
        run: list[int] = []
        for i, flag in zip(ids, is_action, strict=True):
            if flag:
                pieces += [decode(run), f"<action:{i}>"] if run else [f"<action:{i}>"]
                run = []
            else:
                run.append(i)
        return " ".join([*pieces, decode(run)] if run else pieces)

    if start < 0:
        raise ReplyError(
            f"the model's reply holds no action tokens (ids {tokens.vocab_size - tokens.bins + 1}.."
            f"{tokens.vocab_size - 1}); reply: {quote(shown())}"
        )
    action_ids = ids[start : start + dim]
    if len(action_ids) < dim or not is_action[start : start + dim].all():
        got = int(is_action[start : start + dim].sum())
        raise ReplyError(
            f"the model's reply has {got} consecutive action tokens, expected {dim}; reply: {quote(shown())}"
        )
    reasoning, intention = split_labelled(decode(ids[:start]))
    return PolicyStep(tokens.decode(np.asarray(action_ids)), reasoning=reasoning, intention=intention)


class VLMPolicyAdapter(HFAdapter):
    """A transformers image-text-to-text model (AutoModelForImageTextToText + AutoProcessor) prompted to act.

    Options (`-M key=value`), besides HFAdapter's `path` (required), `device`, `dtype`, `revision`,
    `trust_remote_code`, `center_crop`:

    - `format`: `json` (default) or `tokens`; see the module docstring.
    - `max_new_tokens`: generation budget per call (default 256); a reply cut short is an unusable reply.
    - `temperature`: 0 (default) decodes greedily; above 0 samples, seeded from the episode seed.
    - `chat_template`: `auto` (default: the processor's chat template when it has one), `true` (require it)
      or `false` (a plain prompt after the processor's image placeholder).
    - `prompt`: a Jinja template file replacing tasks/prompts/vlm_policy.j2.
    - `action_space`: the convention declared and prompted, as a mapping of ActionSpace fields
      (default: ee_delta, euler_xyz, dim 7, normalised, gripper_open 1 - the tabletop and toy suites).
    - `bins` (default 256) and `action_vocab_size` (default: the model's output vocabulary size): the
      ActionTokenizer of the `tokens` format.
    """

    name = "vlm"
    reasons = True
    answers_questions = True
    needs = "an image-text-to-text checkpoint (-M path=HUB_ID_OR_DIR); a GPU for models above ~1B parameters"

    def load(
        self,
        *,
        device: str,
        dtype: str,
        format: str = "json",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        chat_template: bool | str | None = "auto",
        prompt: str | None = None,
        action_space: dict[str, Any] | None = None,
        bins: int = 256,
        action_vocab_size: int | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            known = [*OPTIONS, "path", "device", "dtype", "revision", "trust_remote_code", "center_crop", "execute"]
            hints = "".join(did_you_mean(k, known) for k in unknown)
            raise TypeError(
                f"unknown option(s) {', '.join(sorted(unknown))}.{hints} The vlm adapter takes {', '.join(known)}"
            )
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}: use {' or '.join(FORMATS)}")
        self.format = format
        try:
            self.action_space = ActionSpace.model_validate(action_space or {})
        except ValidationError as exc:
            raise ValueError(f"bad action_space option: {exc}") from exc
        if format == "tokens" and not self.action_space.normalized:
            raise ValueError("format=tokens decodes to normalised actions; it needs action_space.normalized=true")
        self.max_new_tokens, self.temperature = int(max_new_tokens), float(temperature)
        if self.max_new_tokens < 1 or self.temperature < 0:
            raise ValueError("max_new_tokens must be >= 1 and temperature >= 0")
        self.template, self.template_source, self.template_sha256 = load_template(prompt)
        self.control_mode = ""
        self._rng = EpisodeRNG()  # seeded per episode when sampling (temperature > 0)
        render_prompt(self.template, "check", self.action_space, format)  # fails now, not at step 0

        self.model, self.device, self.dtype = load_model(
            self.path, device=device, dtype=dtype, revision=self.revision, trust_remote_code=self.trust_remote_code
        )
        self.processor = load_processor(self.path, revision=self.revision, trust_remote_code=self.trust_remote_code)
        self.tokenizer: Any = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ValueError(
                f"{self.path}: its processor has no tokenizer; the vlm adapter needs an image-text-to-text checkpoint"
            )
        self.tokenizer.padding_side = "left"  # batched generation continues every prompt from its last token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        has_template = bool(getattr(self.processor, "chat_template", None))
        wanted = None if chat_template in (None, "auto") else bool(chat_template)
        if wanted and not has_template:
            raise ValueError(
                f"{self.path} has no chat template (chat_template=true); use chat_template=false "
                "for a plain prompt, or a checkpoint that ships one"
            )
        self.use_chat_template = has_template if wanted is None else wanted
        self.image_token = str(getattr(self.processor, "image_token", "") or "")

        self.stop_ids = stop_token_ids(self.model, self.tokenizer, self.tokenizer.pad_token_id)
        head = self.model.get_output_embeddings()
        vocab = action_vocab_size or (
            head.weight.shape[0] if head is not None else self.model.config.get_text_config().vocab_size
        )
        self.action_tokens = ActionTokenizer(int(vocab), bins=int(bins)) if format == "tokens" else None

    def reset(self, context: EpisodeContext) -> None:
        # The prompt keeps stating the declared convention: when a task's differs, the runner converts the
        # declared actions to it (adapters/conventions.py), so asking for the task's would convert twice.
        self.control_mode = context.task.control_mode
        if self.temperature > 0:
            self._rng = EpisodeRNG(str(self.device))
            self._rng.seed(context.seed)

    def prompt_text(self, instruction: str) -> str:
        """The full text the processor gets for one call (chat-templated, or after the image placeholder)."""
        text = render_prompt(self.template, instruction, self.action_space, self.format, self.control_mode)
        if not self.use_chat_template:
            return f"{self.image_token}{text}"
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        return str(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    def encode(self, images: list[Any], instructions: list[str]) -> Any:
        """The processor's batch (left-padded) on the model's device and dtype."""
        texts = [self.prompt_text(i) for i in instructions]
        batch = self.processor(text=texts, images=[[im] for im in images], padding=True, return_tensors="pt")
        return batch.to(self.device, dtype=self.dtype)

    def generate(self, images: list[Any], instructions: list[str]) -> list[list[int]]:
        """One batched generate: the new token ids of each reply, up to its first stop token."""
        torch = require("torch", "models", "the vlm adapter")
        batch = self.encode(images, instructions)
        sampling = (
            {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
        )
        with torch.inference_mode(), self._rng.active():
            out = self.model.generate(
                **batch, max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, **sampling
            )
        return new_tokens(out, batch["input_ids"], self.stop_ids)

    def batches_forks(self) -> bool:
        return self.temperature == 0  # sampling draws from each episode's own stream: one call per fork

    def act_forks(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep]:
        """Greedy decoding: one batched generate per control mode among the forks (the prompt states it)."""
        if not self.batches_forks():
            return super().act_forks(forks, observations, instructions)
        out: list[PolicyStep | None] = [None] * len(forks)
        modes: dict[str, list[int]] = {}
        for k, fork in enumerate(forks):
            modes.setdefault(cast(VLMPolicyAdapter, fork).control_mode, []).append(k)
        for rows in modes.values():
            lead = cast(VLMPolicyAdapter, forks[rows[0]])
            steps = lead.predict(lead.images([observations[k] for k in rows]), [instructions[k] for k in rows])
            for k, step in zip(rows, steps, strict=True):
                out[k] = step
        return [s for s in out if s is not None]

    def decode_text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def parse(self, ids: list[int]) -> PolicyStep:
        if self.action_tokens is not None:
            return parse_token_reply(ids, self.action_tokens, self.action_space.dim, self.decode_text)
        return parse_json_reply(self.decode_text(ids), self.action_space.dim)

    def predict(self, images: list[Any], instructions: list[str]) -> list[PolicyStep]:
        steps = []
        for ids in self.generate(images, instructions):
            try:
                steps.append(self.parse(ids))
            except ReplyError as exc:
                if len(ids) < self.max_new_tokens:
                    raise
                raise ReplyError(
                    f"{exc} (the reply used all max_new_tokens={self.max_new_tokens} without "
                    "finishing: raise -M max_new_tokens)"
                ) from None
        return steps

    def answer(self, question: Question) -> str:
        """The VLM side (`vlascore qa`): the benchmark prompt after its images, greedy unless temperature > 0,
        cut before the first stop string."""
        torch = require("torch", "models", "the vlm adapter")
        images = [im.convert("RGB") for im in question.images]
        if self.use_chat_template:
            content = [*({"type": "image"} for _ in images), {"type": "text", "text": question.prompt}]
            text = str(
                self.processor.apply_chat_template(
                    [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
                )
            )
        else:
            text = self.image_token * len(images) + question.prompt
        batch = self.processor(text=[text], images=[images] if images else None, return_tensors="pt")
        batch = batch.to(self.device, dtype=self.dtype)
        sampling = (
            {"do_sample": True, "temperature": question.temperature}
            if question.temperature > 0
            else {"do_sample": False}
        )
        with torch.inference_mode():
            out = self.model.generate(
                **batch, max_new_tokens=question.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, **sampling
            )
        reply = self.decode_text(new_tokens(out, batch["input_ids"], self.stop_ids)[0])
        for stop in question.until:
            if stop and stop in reply:
                reply = reply[: reply.index(stop)]
        return reply

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "format": self.format,
            "prompt_template": self.template_source,
            "prompt_sha256": self.template_sha256,
            "chat_template": self.use_chat_template,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }
