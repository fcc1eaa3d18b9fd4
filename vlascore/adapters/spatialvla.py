"""SpatialVLA (IPEC-COMMUNITY/spatialvla-4b-224-pt and its fine-tunes), in process, as SimplerEnv runs it.

The checkpoint ships its own code (`auto_map`: SpatialVLAForConditionalGeneration, SpatialVLAProcessor). Its
processor turns the image(s) and the instruction into PaliGemma-2 inputs and holds the per-dataset action
statistics and the adaptive action grids; `model.predict_action` decodes a chunk of action tokens (3 per step:
translation cell, rotation cell, gripper) and `processor.decode_actions` maps them to a (chunk, 7) array in the
dataset's units. Following SimplerEnv's SpatialVLAInference: the camera image is resized to 224 x 224 (OpenCV's
INTER_AREA there; PIL's antialiased bilinear is the closest filter here), the prompt is the bare instruction
(lower-cased, as the training pipeline did), the processor is called with `do_normalize=False` (the model
normalises for SigLIP and ZoeDepth itself), the frame history is `num_obs_steps` frames `obs_delta` apart (the
first frame repeated at the start of an episode), each step's chunk is temporally ensembled with temperature
-0.8 and one action executed, and the 0..1 gripper becomes the robot's command (WidowX: +1 / -1 at 0.5; Google
Robot: the latched sticky relative command, held 10 steps).

Actions are declared as what they are after that: end-effector deltas in metres and radians with roll-pitch-yaw
rotation (Open X-Embodiment's convention) and the robot's gripper convention. The runner converts them to each
task's controller; the adapter does not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from vlascore.adapters.base import EpisodeContext, PolicyStep
from vlascore.adapters.hf import HFAdapter, load_model, load_processor, transformers_module
from vlascore.adapters.normalization import pick_stats
from vlascore.adapters.preprocess import ImageSpec
from vlascore.adapters.simpler_post import (
    ExponentialEnsembler,
    LatchedGripper,
    apply_gripper,
    arm_space,
    execute_steps,
    make_gripper,
    parse_ensemble,
)
from vlascore.backends.base import Observation
from vlascore.extras import MissingExtraError, require
from vlascore.suites import ActionSpace


def resolve_unnorm_key(table: dict[str, Any], key: str | None) -> str | None:
    """`bridge_orig` names `bridge_orig/1.0.0` when that is its only version in the table; else `key` as given."""
    if key is None or key in table:
        return key
    versions = [k for k in table if k.split("/")[0] == key]
    return versions[0] if len(versions) == 1 else key


@contextmanager
def remote_code_hint(path: str, model: str) -> Iterator[None]:
    """Re-raise an ImportError from a checkpoint's own code saying which transformers it was written for."""
    try:
        yield
    except MissingExtraError:
        raise
    except ImportError as exc:
        version = transformers_module().__version__
        hint = ""
        if int(version.split(".")[0]) >= 5:
            hint = (
                f" The released {model} code targets transformers 4.47-4.x (it imports HybridCache and PaliGemma "
                f"processor helpers that transformers 5 removed) and this environment has {version}: run it where "
                "`pip install 'transformers>=4.47,<5'` is installed."
            )
        raise ImportError(f"cannot import the modelling code shipped with {path}: {exc}.{hint}") from exc


class SpatialVLAAdapter(HFAdapter):
    """Options (`-M key=value`, besides HFAdapter's): `unnorm_key` (dataset statistics: `bridge_orig` for WidowX,
    `fractal20220817_data` for Google Robot; the version suffix may be left out; required when the checkpoint has
    several), `ensemble` (temporal-ensembling temperature, -0.8 as SimplerEnv; `none` returns each chunk as
    predicted, of which `execute` actions run), `robot` (gripper rule: auto from unnorm_key, widowx, google,
    generic = 2g - 1), `sticky_repeat` (steps a Google Robot gripper change is held, 10 as SimplerEnv)."""

    name = "spatialvla"
    default_path = "IPEC-COMMUNITY/spatialvla-4b-224-pt"
    action_space = ActionSpace(
        mode="ee_delta", rotation="euler_rpy", dim=7, normalized=False, gripper_open=1, gripper_binary=True
    )
    chunk_size = 4
    execute_steps: int | None = 1
    image_spec = ImageSpec(size=(224, 224), resample="bilinear")
    needs = (
        "checkpoint download ~8 GB (4B parameters, bfloat16); its remote code needs transformers >=4.47,<5 "
        "and torchvision; a CUDA GPU with ~8.5 GB (model card)"
    )

    def load(
        self,
        *,
        device: str,
        dtype: str,
        unnorm_key: str | None = None,
        ensemble: Any = -0.8,
        robot: str = "auto",
        sticky_repeat: int = 10,
        **options: Any,
    ) -> None:
        if options:
            raise TypeError(f"unknown option(s) for adapter {self.name!r}: {', '.join(sorted(options))}")
        if (dtype or "auto").lower() not in ("auto", "bfloat16"):
            raise ValueError(
                f"dtype {dtype!r}: SpatialVLA's predict_action casts its inputs to bfloat16, so the model "
                "runs in bfloat16 (-M dtype=bfloat16 or auto)"
            )
        self.temperature = parse_ensemble(ensemble, "temperature (SimplerEnv: -0.8)")
        with remote_code_hint(self.path, "SpatialVLA"):
            self.processor = load_processor(self.path, revision=self.revision, trust_remote_code=self.trust_remote_code)
            if not hasattr(self.processor, "decode_actions"):
                raise ValueError(
                    f"{self.path} is not a SpatialVLA checkpoint: its processor "
                    f"({type(self.processor).__name__}) has no decode_actions"
                )
            table = dict(getattr(self.processor, "statistics", None) or {})
            self.unnorm_key, _ = pick_stats(
                table, resolve_unnorm_key(table, unnorm_key), f"{self.path} (processor_config.json statistics)"
            )
            self.model, self.device, self.dtype = load_model(
                self.path,
                device=device,
                dtype="bfloat16",
                revision=self.revision,
                trust_remote_code=self.trust_remote_code,
                default_class="AutoModel",
            )
        self.chunk_size = int(getattr(self.processor, "action_chunk_size", 1))
        self.num_obs_steps = int(getattr(self.processor, "num_obs_steps", 1))
        self.obs_delta = int(getattr(self.processor, "obs_delta", 1))
        self.obs_horizon = (self.num_obs_steps - 1) * self.obs_delta + 1
        self.execute_steps = execute_steps(self.temperature is not None, self.config.get("execute"))
        self.ensembler = None if self.temperature is None else ExponentialEnsembler(self.chunk_size, self.temperature)
        self.gripper: LatchedGripper = make_gripper(self.unnorm_key, robot, sticky_repeat)
        self.action_space = arm_space(self.gripper)
        self.history: deque[Any] = deque(maxlen=self.obs_horizon)

    def chunk(self, frames: list[Any], instruction: str) -> np.ndarray:
        """(chunk, 7) actions in the dataset's units, gripper 0 closed .. 1 open, for `frames` (oldest first)."""
        torch = require("torch", "models", "SpatialVLA")
        inputs = self.processor(
            images=frames,
            text=instruction.strip().lower(),
            unnorm_key=self.unnorm_key,
            return_tensors="pt",
            do_normalize=False,
        )
        with torch.no_grad():
            generated = self.model.predict_action(inputs)
        actions = self.processor.decode_actions(generation_outputs=generated, unnorm_key=self.unnorm_key)["actions"]
        return np.asarray(actions, dtype=np.float64).reshape(-1, 7)

    def predict(self, images: list[Any], instructions: list[str]) -> list[PolicyStep]:
        """Independent calls, each as an episode's first (the frame repeated as its history, no ensembling, a fresh
        gripper), one forward each: `decode_actions` reads only row 0 of a batch, and the model's position ids do not
        account for padding. Each returns the actions such a call would execute."""
        steps = []
        for image, text in zip(images, instructions, strict=True):
            chunk = self.chunk([image] * self.num_obs_steps, text)
            actions = chunk[:1] if self.ensembler is not None else chunk[: self.execute_steps]
            steps.append(
                PolicyStep(
                    apply_gripper(actions, make_gripper(self.unnorm_key, self.gripper.robot, self.gripper.repeat))
                )
            )
        return steps

    def reset(self, context: EpisodeContext) -> None:
        self.history.clear()
        self.gripper.reset()
        if self.ensembler is not None:
            self.ensembler.reset()

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        image = self.images([obs])[0]
        if not self.history:  # the first frame stands in for the history the episode does not have yet
            self.history.extend([image] * self.obs_horizon)
        else:
            self.history.append(image)
        chunk = self.chunk(list(self.history)[:: self.obs_delta], instruction)
        actions = self.ensembler(chunk)[None] if self.ensembler is not None else chunk[: self.execute_steps]
        return PolicyStep(apply_gripper(actions, self.gripper))

    def act_batch(self, observations: list[Observation], instructions: list[str]) -> list[PolicyStep]:
        # each call depends on the episode so far (frame history, ensembling, the gripper): a batch is those calls
        return [self.act(o, i) for o, i in zip(observations, instructions, strict=True)]

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "unnorm_key": self.unnorm_key,
            "ensemble_temperature": self.temperature,
            "robot": self.gripper.robot,
            "sticky_repeat": self.gripper.repeat,
            "num_obs_steps": self.num_obs_steps,
            "obs_delta": self.obs_delta,
            "prompt": "{instruction}, lower-cased",
        }
