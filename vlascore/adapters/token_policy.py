"""Action-token VLAs (OpenVLA and its fine-tunes, ECoT, Magma): one pipeline from prompt to robot action.

They share a recipe: a prompt in the checkpoint's training format, greedy generation, the last `dim` generated
tokens read as 256-bin action tokens at the tail of the text vocabulary, un-normalisation with the statistics of
one training dataset (`unnorm_key`), then the embodiment's gripper post-processing (SimplerEnv's, per robot).
Generation and decoding run here, around `model.generate`, rather than in the checkpoints' own `predict_action`,
so the same code serves real checkpoints and the tiny offline fixtures; subclasses supply the prompt, the
processor call and the generation budget.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from vlascore.adapters.action_tokens import ActionTokenizer
from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.adapters.device import select_device
from vlascore.adapters.hf import HFAdapter, load_model, load_processor, new_tokens, read_config, stop_token_ids
from vlascore.adapters.normalization import pick_stats
from vlascore.backends.base import Observation
from vlascore.extras import require
from vlascore.suites import ActionSpace

Robot = Literal["widowx", "google", "libero", "generic"]
ROBOTS: tuple[str, ...] = ("widowx", "google", "libero", "generic")

# Bridge and Open X-Embodiment (fractal) record rotation deltas as roll-pitch-yaw about fixed axes.
ARM_ROTATION: Literal["euler_rpy"] = "euler_rpy"


def robot_for(unnorm_key: str) -> Robot:
    """The embodiment a dataset's statistics imply: Bridge -> WidowX, fractal (RT-1 data) -> Google Robot, LIBERO's
    datasets (libero_spatial_no_noops...) -> LIBERO's Panda."""
    key = unnorm_key.lower()
    if "bridge" in key:
        return "widowx"
    if "fractal" in key or "google" in key:
        return "google"
    if "libero" in key:
        return "libero"
    return "generic"


def arm_convention(robot: str) -> tuple[Literal["euler_rpy", "axis_angle"], bool]:
    """(rotation, normalised) of the arm part of a robot's dataset actions: metres and roll-pitch-yaw radians for
    Open X-Embodiment data; LIBERO's demonstrations record the commands its OSC_POSE controller took (axis-angle,
    in [-1, 1]), so its fine-tunes predict those."""
    return ("axis_angle", True) if robot == "libero" else (ARM_ROTATION, False)


class GripperPost:
    """Maps the predicted gripper openness (0 closed .. 1 open) to the command the robot's controller takes.

    widowx: +1 open / -1 close, thresholded at 0.5 (SimplerEnv's Bridge setup). libero: -1 open / +1 close,
    thresholded at 0.5 (OpenVLA's LIBERO evaluation binarises the openness, then flips its sign for LIBERO's
    gripper). google: the *change* of openness,
    previous - current (so +1 closes, -1 opens), held for `repeat` steps once it exceeds 0.5 ("sticky" gripper, as
    SimplerEnv's Google Robot setup; the first call of an episode commands 0). generic: 2 * openness - 1 with the
    openness clipped to [0, 1], continuous (+1 open), for the task's conventions to convert.
    """

    def __init__(self, robot: Robot, repeat: int) -> None:
        self.robot, self.repeat = robot, int(repeat)
        if self.repeat < 1:
            raise ValueError(f"sticky_repeat must be >= 1, got {repeat}")
        self.reset()

    @property
    def gripper_open(self) -> Literal[1, -1]:
        return -1 if self.robot in ("google", "libero") else 1

    @property
    def gripper_binary(self) -> bool:
        return self.robot in ("widowx", "libero")

    @property
    def gripper_mode(self) -> Literal["absolute", "relative"]:
        return "relative" if self.robot == "google" else "absolute"

    def reset(self) -> None:
        self.previous: float | None = None
        self.held: float | None = None
        self.count = 0

    def __call__(self, openness: float) -> float:
        if self.robot == "widowx":
            return 1.0 if openness > 0.5 else -1.0
        if self.robot == "libero":
            return -1.0 if openness > 0.5 else 1.0
        if self.robot == "generic":
            return 2.0 * min(max(openness, 0.0), 1.0) - 1.0
        change = 0.0 if self.previous is None else self.previous - openness
        self.previous = openness
        if self.held is None and abs(change) > 0.5:
            self.held, self.count = change, 0
        if self.held is not None:
            change, self.count = self.held, self.count + 1
            if self.count >= self.repeat:
                self.held, self.count = None, 0
        return change


def read_stats_file(path: str) -> dict[str, Any]:
    """A `{dataset: {"action": {...}}}` table from JSON: OpenVLA's layout, a whole config.json holding one
    (`norm_stats`), or a dataset_statistics.json."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"norm_stats file {path!r} does not exist")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"norm_stats file {path!r} is not JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("norm_stats"), dict):
        data = data["norm_stats"]
    if not isinstance(data, dict):
        raise ValueError(f"norm_stats file {path!r} must hold a JSON object of {{dataset: {{'action': {{...}}}}}}")
    return data


class ActionTokenPolicy(HFAdapter):
    """Shared loading, batched generation, action-token decoding and post-processing of action-token VLAs.

    Options beyond HFAdapter's: `unnorm_key` (dataset whose statistics un-normalise the actions; required when the
    checkpoint has several), `norm_stats` (JSON file overriding the checkpoint's statistics), `robot` (widowx,
    google, generic or auto: from unnorm_key), `sticky_repeat` (steps a Google Robot gripper change is held),
    `batch` (samples per generate call; default all, but 1 for checkpoints with their own modelling code, which
    may not batch), `max_new_tokens` (generation budget; models that only speak actions default to just enough).
    """

    action_space = ActionSpace(
        mode="ee_delta", rotation=ARM_ROTATION, dim=7, normalized=False, gripper_open=1, gripper_binary=True
    )
    """As listed (WidowX's gripper); each instance declares the one its statistics and `robot` imply."""
    sticky_repeat: int = 15
    """Default steps a Google Robot gripper change is held (SimplerEnv uses 15 for OpenVLA, Octo and RT-1)."""
    lowercase_instruction: bool = True
    """Whether the training data lower-cased instructions (OpenVLA's pipeline did)."""

    def load(
        self,
        *,
        device: str,
        dtype: str,
        unnorm_key: str | None = None,
        norm_stats: str | None = None,
        robot: str = "auto",
        sticky_repeat: int | None = None,
        batch: int | None = None,
        max_new_tokens: int | None = None,
        **options: Any,
    ) -> None:
        # everything that can be wrong with the options fails before the weights load (15 GB for a 7B checkpoint)
        select_device(device)
        if robot != "auto" and robot not in ROBOTS:
            raise ValueError(f"unknown robot {robot!r}: use auto, {', '.join(ROBOTS)}")
        if batch is not None and int(batch) < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.checkpoint_config = read_config(self.path, self.revision)
        if self.checkpoint_config.get("auto_map") and not self.trust_remote_code:
            raise ValueError(
                f"{self.path} ships its own modelling code (config.json `auto_map`); loading it needs "
                "-M trust_remote_code=true"
            )
        table, where = self.stats_table(norm_stats)
        self.unnorm_key, self.stats = pick_stats(table, unnorm_key, where)
        self.stats_source = where
        if self.stats.dim != 7:
            raise ValueError(
                f"{self.name}: statistics {self.unnorm_key!r} describe {self.stats.dim}-dim actions; this adapter "
                "handles 7-dim end-effector deltas (xyz, roll-pitch-yaw, gripper)"
            )
        self.robot: Robot = robot_for(self.unnorm_key) if robot == "auto" else robot  # type: ignore[assignment]
        self.gripper = GripperPost(self.robot, sticky_repeat if sticky_repeat is not None else self.sticky_repeat)
        rotation, normalized = arm_convention(self.robot)
        self.action_space = ActionSpace(
            mode="ee_delta",
            rotation=rotation,
            dim=self.stats.dim,
            normalized=normalized,
            gripper_open=self.gripper.gripper_open,
            gripper_binary=self.gripper.gripper_binary,
            gripper=self.gripper.gripper_mode,
        )
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens is not None else None
        self.processor = load_processor(self.path, revision=self.revision, trust_remote_code=self.trust_remote_code)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"  # batched prompts end together, where generation starts
        self.configure(**options)
        self.model, self.device, self.dtype = load_model(
            self.path,
            device=device,
            dtype=dtype,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            default_class="AutoModelForImageTextToText",
        )
        bins = int(getattr(self.model.config, "n_action_bins", 256))
        self.actions = ActionTokenizer(self.action_vocab_size(), bins=bins)
        remote = type(self.model).__module__.startswith("transformers_modules")
        self.batch = int(batch) if batch is not None else (1 if remote else None)

    def configure(self, **options: Any) -> None:
        """Subclass options; unknown ones are an error."""
        if options:
            raise TypeError(f"unknown option(s) for adapter {self.name!r}: {', '.join(sorted(options))}")

    # --- what subclasses define -------------------------------------------------------------------------------
    @abstractmethod
    def prompt(self, instruction: str) -> str:
        """The full prompt, exactly as the checkpoint was trained to see it."""

    def stats_table(self, override: str | None) -> tuple[dict[str, Any], str]:
        """The {dataset: {"action": stats}} table and where it came from (for error messages and the run record)."""
        if override:
            return read_stats_file(override), str(override)
        return dict(self.checkpoint_config.get("norm_stats") or {}), f"{self.path} config.json `norm_stats`"

    def action_vocab_size(self) -> int:
        """Vocabulary size whose tail holds the action bins (OpenVLA: the text vocabulary without its padding)."""
        config = self.model.config
        text = getattr(config, "text_config", config)
        return int(text.vocab_size) - int(getattr(config, "pad_to_multiple_of", 0) or 0)

    def budget(self) -> int:
        """Default max_new_tokens: the action tokens and an end token."""
        return self.stats.dim + 1

    def encode(self, images: list[Any], prompts: list[str]) -> dict[str, Any]:
        """Processor outputs for one generate call (input_ids, attention_mask, pixel values...)."""
        return dict(self.processor(text=prompts, images=images, return_tensors="pt", padding=True))

    def empty_token_id(self) -> int | None:
        """A token appended to each prompt that does not end with it (OpenVLA's empty '▁'); None for none."""
        return None

    # --- the shared pipeline ------------------------------------------------------------------------------------
    def generate(
        self, images: list[Any], prompts: list[str], *, max_new_tokens: int | None = None, append_empty: bool = True
    ) -> list[list[int]]:
        """Greedy generation in batches of `self.batch`; each sample's new tokens, cut before the first end token."""
        torch = require("torch", "models", "in-process model adapters")
        budget = max_new_tokens or self.max_new_tokens or self.budget()
        size = self.batch or max(1, len(prompts))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        ends = stop_token_ids(self.model, self.tokenizer)
        out: list[list[int]] = []
        for start in range(0, len(prompts), size):
            inputs = self.encode(images[start : start + size], prompts[start : start + size])
            if append_empty and self.empty_token_id() is not None:
                inputs = self.with_empty_token(inputs, int(self.empty_token_id()), pad)  # type: ignore[arg-type]
            inputs = {k: self.to_device(v) for k, v in inputs.items()}
            with torch.inference_mode():
                seqs = self.model.generate(
                    **inputs, do_sample=False, num_beams=1, max_new_tokens=budget, pad_token_id=pad
                )
            out.extend(new_tokens(seqs, inputs["input_ids"], ends))
        return out

    def to_device(self, value: Any) -> Any:
        torch = require("torch", "models", "in-process model adapters")
        if not isinstance(value, torch.Tensor):
            return value
        return value.to(self.device, dtype=self.dtype) if value.is_floating_point() else value.to(self.device)

    @staticmethod
    def with_empty_token(inputs: dict[str, Any], token: int, pad: int) -> dict[str, Any]:
        """Append `token` to every prompt not ending with it, re-padding on the left (rows may differ)."""
        torch = require("torch", "models", "in-process model adapters")
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        mask = torch.ones_like(ids) if mask is None else mask
        rows = [r[m.bool()] for r, m in zip(ids, mask, strict=True)]
        if all(len(r) and int(r[-1]) == token for r in rows):
            return inputs
        rows = [r if len(r) and int(r[-1]) == token else torch.cat([r, r.new_tensor([token])]) for r in rows]
        width = max(len(r) for r in rows)
        new_ids = torch.full((len(rows), width), pad, dtype=ids.dtype)
        new_mask = torch.zeros((len(rows), width), dtype=mask.dtype)
        for i, r in enumerate(rows):
            new_ids[i, width - len(r) :], new_mask[i, width - len(r) :] = r, 1
        return {**inputs, "input_ids": new_ids, "attention_mask": new_mask}

    def split_actions(self, ids: list[int]) -> tuple[list[int], np.ndarray]:
        """(text tokens, action tokens): the output must end in `dim` action tokens."""
        dim = self.stats.dim
        tail = np.asarray(ids[-dim:], dtype=np.int64)
        if len(ids) < dim or not self.actions.is_action_token(tail).all():
            try:
                text = self.tokenizer.decode(ids[-40:], skip_special_tokens=False)
            except Exception:  # noqa: BLE001 - only for the message
                text = "?"
            raise ValueError(
                f"{self.name}: the model's output does not end in {dim} action tokens (ids "
                f"{self.actions.vocab_size - len(self.actions.centers)}..{self.actions.vocab_size - 1}); it generated "
                f"{len(ids)} token(s), ending {ids[-12:]} ({text!r}). A wrong checkpoint or prompt, or a generation "
                f"budget too small (-M max_new_tokens, now {self.max_new_tokens or self.budget()})"
            )
        return ids[:-dim], tail

    def to_action(self, action_ids: np.ndarray) -> np.ndarray:
        """Action tokens -> un-normalised action, with the gripper entry still the predicted openness."""
        return self.stats.unnormalize(self.actions.decode(action_ids))

    def postprocess(self, steps: list[PolicyStep]) -> list[PolicyStep]:
        """The gripper convention, applied in call order with the episode's state (Google Robot's is stateful)."""
        for step in steps:
            step.action = np.asarray(step.action, dtype=np.float64).copy()
            step.action[-1] = self.gripper(float(step.action[-1]))
        return steps

    def predict(self, images: list[Any], instructions: list[str]) -> list[PolicyStep]:
        """Raw steps: un-normalised actions whose gripper entry is the predicted openness (see `postprocess`)."""
        outputs = self.generate(images, [self.prompt(i) for i in instructions])
        return [PolicyStep(action=self.to_action(self.split_actions(ids)[1])) for ids in outputs]

    def instruction_text(self, instruction: str) -> str:
        text = instruction.strip()
        return text.lower() if self.lowercase_instruction else text

    def reset(self, context: EpisodeContext) -> None:
        self.gripper.reset()

    def act_batch(self, observations: list[Observation], instructions: list[str]) -> list[PolicyStep]:
        """One batched forward; the gripper post-processing then runs in order, as consecutive act() calls would."""
        return self.postprocess(self.predict(self.images(observations), instructions))

    def act_forks(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep]:
        """One batched forward over every fork's observation; each fork then applies its own gripper state."""
        steps = self.predict(self.images(observations), instructions)
        return [cast(ActionTokenPolicy, f).postprocess([s])[0] for f, s in zip(forks, steps, strict=True)]

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "unnorm_key": self.unnorm_key,
            "norm_stats": self.stats_source,
            "robot": self.robot,
            "sticky_repeat": self.gripper.repeat,
            "batch": self.batch,
            "action_vocab_size": self.actions.vocab_size,
            "empty_token_id": self.empty_token_id(),
            "max_new_tokens": self.max_new_tokens or self.budget(),
            "prompt": self.prompt("{instruction}"),
        }
