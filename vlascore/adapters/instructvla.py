"""InstructVLA and DualVLA: an Eagle-2 VLM that can answer (reason) before acting, plus a flow-matching action
expert predicting a chunk of end-effector deltas, run in process through InstructVLA's own code.

InstructVLA (github.com/InternRobotics/InstructVLA) is not a Hugging Face checkpoint: `vla/<variant>.py`'s
`load_vla(RUN/checkpoints/NAME.pt)` builds the model from the repository's `ckpt/Eagle2-2B` and the run's
`config.json` and `dataset_statistics.json`; `predict_action(image, instruction, unnorm_key, use_generate)` returns
the un-normalised chunk (gripper thresholded to 0/1). A stage-2 (Generalist) checkpoint with `use_generate` first
answers "What action should the robot take to {instruction}? First answer my question." (regenerated every 20
calls, kept in `last_response`) and conditions the actions on that answer: the adapter returns it as the step's
reasoning. DualVLA has the same architecture and loads with the same code; its weights are not public, so
`dualvla` takes a local checkpoint and reasons by default.

Pre/post-processing follow InstructVLA's SimplerEnv wrapper (policies/sim_instructvla/instructvla_policy_meta.py):
the camera image as it is (Eagle's processor and the expert's DINOv2 transform resize it), the adaptive (cosine)
ensemble with alpha 0.1 over the last 7 chunks for Bridge statistics and 2 for fractal, one action executed per
step, and the WidowX / Google Robot gripper rule. The instruction is lower-cased, as InstructVLA's training data.
Flow matching starts from noise, so `reset` seeds torch from the episode seed.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from vlascore.adapters.base import EpisodeContext, PolicyStep
from vlascore.adapters.device import EpisodeRNG, select_device
from vlascore.adapters.hf import HFAdapter, read_config
from vlascore.adapters.normalization import pick_stats
from vlascore.adapters.preprocess import ImageSpec
from vlascore.adapters.simpler_post import (
    CosineEnsembler,
    LatchedGripper,
    apply_gripper,
    arm_space,
    execute_steps,
    make_gripper,
    parse_ensemble,
)
from vlascore.backends.base import Observation
from vlascore.extras import require
from vlascore.suites import ActionSpace

REPO = "https://github.com/InternRobotics/InstructVLA"
ASSETS = "ShuaiYang03/InstructVLA_Assets"
DEFAULT_MODULE = "vla.instructvla_eagle_dual_sys_v2_meta_query_v2"
ENSEMBLE_HORIZON = {"bridge_dataset": 7, "fractal20220817_data": 2}
"""SimplerEnv wrapper's action_ensemble_horizon per policy setup (WidowX / Google Robot)."""
INFERENCE_STATE = {"last_response": None, "run_index": 0, "latent": None}
"""The model's per-episode state (the cached answer and its call counter), as the wrapper's reset() clears it."""
_SPECIAL = re.compile(r"<\|[^|>]*\|>|<new_token_\d+>")


def clean_reasoning(text: str | None) -> str | None:
    """The decoded answer without chat-template and latent-query tokens; None when nothing is left."""
    words = _SPECIAL.sub(" ", text or "").split()
    return " ".join(words) or None


def import_instructvla(code: str | None, module: str) -> ModuleType:
    """InstructVLA's model module, from `code` (a clone of the repository) or wherever Python finds it."""
    top = module.split(".")[0]
    if code:
        root = Path(code).expanduser().resolve()
        if not (root / top).is_dir():
            raise FileNotFoundError(
                f"-M code={code}: there is no `{top}/` package there; point it at the root of a clone of {REPO}"
            )
        loaded = sys.modules.get(module)
        where = Path(getattr(loaded, "__file__", None) or root).resolve()
        if loaded is not None and not where.is_relative_to(root):
            raise ImportError(
                f"`{module}` is already imported from {where}, not from -M code={code}; run vlascore in "
                "a fresh process to switch between clones"
            )
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise ImportError(
                f"InstructVLA's code is not importable (`import {module}`: {exc}). It is a repository, not a "
                f"package: git clone {REPO} /path/to/InstructVLA, install its requirements "
                "(pip install -r /path/to/InstructVLA/pip_requirements.txt; it pins transformers==4.51.0 and needs "
                "peft, timm and flash-attn), then pass -M code=/path/to/InstructVLA (or put it on PYTHONPATH)"
            ) from exc
        raise ImportError(
            f"InstructVLA's code imports `{exc.name}`, which is not installed: pip install -r "
            "<your InstructVLA clone>/pip_requirements.txt"
        ) from exc
    if not callable(getattr(mod, "load_vla", None)):
        raise ImportError(f"`{module}` has no load_vla(): not InstructVLA's model module (-M module=...)")
    return mod


def resolve_checkpoint(path: str) -> tuple[str, Path | None]:
    """(what load_vla takes, the run directory or None for a hub id). Local runs are checked for the files the
    loader reads, so a wrong path fails here with what is missing."""
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix != ".pt" or p.parent.name != "checkpoints":
            raise ValueError(f"{path}: InstructVLA checkpoints are RUN_DIR/checkpoints/NAME.pt files")
        run = p.parents[1]
    elif p.is_dir():
        found = sorted((p / "checkpoints").glob("*.pt"))
        if len(found) != 1:
            names = ", ".join(f.name for f in found) or "none"
            raise ValueError(
                f"{path}/checkpoints holds {len(found)} .pt files ({names}): pass one with "
                f"-M path={p}/checkpoints/NAME.pt"
            )
        run, p = p, found[0]
    elif path.startswith(("/", ".", "~")) or path.count("/") != 1:
        raise FileNotFoundError(
            f"checkpoint {path!r} does not exist: give a run directory, its checkpoints/NAME.pt "
            "or a hub id (ShuaiYang03/instructvla_...)"
        )
    else:
        return path, None
    for name in ("config.json", "dataset_statistics.json"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run} has no {name}: InstructVLA's load_vla reads it from the run directory")
    return str(p), run


class InstructVLAAdapter(HFAdapter):
    """Options (`-M key=value`, besides HFAdapter's path/device/dtype/center_crop/execute): `code` (root of an
    InstructVLA clone, put on sys.path), `module` (the model variant; default the third-view one SimplerEnv
    uses), `unnorm_key` (`bridge_dataset` or `fractal20220817_data`; required when the run has several),
    `reasoning` (answer before acting; default: on for stage-2 checkpoints), `ensemble` (the cosine ensemble's
    alpha, 0.1; `none` returns each chunk as predicted, of which `execute` actions run), `ensemble_horizon`
    (chunks averaged; default 7 for Bridge, 2 for fractal, else the chunk length), `robot` (gripper rule: auto
    from unnorm_key, widowx, google, generic) and `sticky_repeat` (10, as the wrapper)."""

    name = "instructvla"
    default_path = "ShuaiYang03/instructvla_finetune_v2_xlora_freeze_head_instruction"
    action_space = ActionSpace(
        mode="ee_delta", rotation="euler_rpy", dim=7, normalized=False, gripper_open=1, gripper_binary=True
    )
    chunk_size = 16
    execute_steps: int | None = 1
    reasons = True
    image_spec = ImageSpec()
    default_reasoning: bool | None = None
    """None: reason exactly when the checkpoint is stage 2 (the Generalist)."""
    needs = (
        f"InstructVLA's code ({REPO}: clone it, pip install -r pip_requirements.txt, put {ASSETS} in its ckpt/, "
        "pass -M code=DIR); the Generalist checkpoint (default) downloads from the hub; a CUDA GPU "
        "(its code uses flash-attention 2 and CUDA autocast)"
    )

    def load(
        self,
        *,
        device: str,
        dtype: str,
        code: str | None = None,
        module: str = DEFAULT_MODULE,
        unnorm_key: str | None = None,
        reasoning: bool | None = None,
        ensemble: Any = 0.1,
        ensemble_horizon: int | None = None,
        robot: str = "auto",
        sticky_repeat: int = 10,
        **options: Any,
    ) -> None:
        if options:
            raise TypeError(f"unknown option(s) for adapter {self.name!r}: {', '.join(sorted(options))}")
        if self.revision:
            raise ValueError("InstructVLA's load_vla takes no revision: download that revision and pass -M path=DIR")
        if not self.trust_remote_code:
            raise ValueError(
                "InstructVLA's loader always runs Eagle-2's own modelling code; trust_remote_code=false "
                "cannot be honoured"
            )
        if (dtype or "auto").lower() not in ("auto", "bfloat16"):
            raise ValueError(
                f"dtype {dtype!r}: InstructVLA casts its inputs to bfloat16 and runs the VLM in "
                "bfloat16 (-M dtype=bfloat16 or auto)"
            )
        self.alpha = parse_ensemble(ensemble, "cosine ensemble's alpha (InstructVLA: 0.1)")
        torch = require("torch", "models", "InstructVLA")
        self.device = select_device(device)
        mod = import_instructvla(code, module)
        self.code = str(Path(str(mod.__file__)).resolve().parents[1])
        checkpoint, run = resolve_checkpoint(self.path)
        config = read_config(str(run) if run is not None else self.path)
        window = int(config.get("future_action_window_size", 15))  # the chunk is the current action + `window`
        self._check_assets(config.get("stage"))
        vla = mod.load_vla(
            checkpoint,
            load_for_training=False,
            future_action_window_size=window,
            past_action_window_size=1,
            action_dim=7,
        )
        vla.vlm = vla.vlm.to(torch.bfloat16)  # as the wrapper's use_bf16; the action expert stays float32
        self.model, self.dtype = vla.to(self.device).eval(), torch.bfloat16
        self.unnorm_key, _ = pick_stats(
            dict(getattr(vla, "norm_stats", None) or {}), unnorm_key, f"{run or self.path} dataset_statistics.json"
        )
        self.stage = getattr(vla, "stage", config.get("stage"))
        params = inspect.signature(vla.predict_action).parameters
        if "proprio" in params:
            raise ValueError(
                f"`{module}` predicts from robot state as well (proprio), which vlascore does not map "
                f"to the WidowX / Google Robot state it was trained on; use {DEFAULT_MODULE}"
            )
        self.reasons = self._reasoning(reasoning, "use_generate" in params)
        self._generate_kw = {"use_generate": self.reasons} if "use_generate" in params else {}
        self.chunk_size = window + 1
        self.execute_steps = execute_steps(self.alpha is not None, self.config.get("execute"))
        self.ensembler: CosineEnsembler | None = None
        if self.alpha is not None:
            n = int(ensemble_horizon or min(ENSEMBLE_HORIZON.get(self.unnorm_key, self.chunk_size), self.chunk_size))
            if not 1 <= n <= self.chunk_size:
                raise ValueError(f"ensemble_horizon must be in 1..{self.chunk_size} (the chunk length), got {n}")
            self.ensembler = CosineEnsembler(n, self.alpha)
        self.gripper: LatchedGripper = make_gripper(self.unnorm_key, robot, sticky_repeat)
        self.action_space = arm_space(self.gripper)

    def _check_assets(self, stage: Any) -> None:
        ckpt = Path(self.code) / "ckpt"
        needed = ["Eagle2-2B"] + (["empty_language_adapter"] if stage == "stage2" else [])
        missing = [n for n in needed if not (ckpt / n).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"InstructVLA builds its model from {ckpt}/{{{','.join(needed)}}}; missing "
                f"{', '.join(missing)}: huggingface-cli download {ASSETS} "
                f"--local-dir {ckpt}"
            )

    def _reasoning(self, requested: bool | None, can_generate: bool) -> bool:
        want = self.default_reasoning if requested is None else bool(requested)
        stage2 = self.stage == "stage2"
        if want is None:
            return stage2 and can_generate
        if want and not (stage2 and can_generate):
            why = "its predict_action has no use_generate" if stage2 else f"{self.path} is a {self.stage} checkpoint"
            raise ValueError(
                f"adapter {self.name!r}: reasoning needs a stage-2 (Generalist) checkpoint that answers "
                f"before acting; {why}. Pass -M reasoning=false to run it as a specialist"
            )
        return bool(want)

    def chunk(self, image: Any, instruction: str) -> tuple[np.ndarray, str | None]:
        """(chunk, 7) actions in the dataset's units with the 0/1 gripper, and the answer they were conditioned on."""
        torch = require("torch", "models", "InstructVLA")
        with torch.inference_mode():
            actions, _normalized, _latent = self.model.predict_action(
                image=image,
                instruction=instruction.strip().lower(),
                unnorm_key=self.unnorm_key,
                do_sample=False,
                **self._generate_kw,
            )
        reasoning = clean_reasoning(getattr(self.model, "last_response", None)) if self.reasons else None
        return np.asarray(actions, dtype=np.float64).reshape(-1, 7), reasoning

    def _clear_model_state(self) -> None:
        for key, value in INFERENCE_STATE.items():
            if hasattr(self.model, key):
                setattr(self.model, key, value)

    @contextmanager
    def _fresh_state(self) -> Iterator[None]:
        saved = {k: getattr(self.model, k) for k in INFERENCE_STATE if hasattr(self.model, k)}
        self._clear_model_state()
        try:
            yield
        finally:
            for key, value in saved.items():
                setattr(self.model, key, value)

    def predict(self, images: list[Any], instructions: list[str]) -> list[PolicyStep]:
        """Independent calls, each as an episode's first (a fresh answer, no ensembling, a fresh gripper), one at a
        time: InstructVLA's predict_action takes one image. Each returns the actions a call would execute."""
        steps = []
        for image, text in zip(images, instructions, strict=True):
            with self._fresh_state():
                chunk, reasoning = self.chunk(image, text)
            actions = chunk[:1] if self.ensembler is not None else chunk[: self.execute_steps]
            fresh = make_gripper(self.unnorm_key, self.gripper.robot, self.gripper.repeat)
            steps.append(PolicyStep(apply_gripper(actions, fresh), reasoning=reasoning))
        return steps

    def reset(self, context: EpisodeContext) -> None:
        self._rng = EpisodeRNG(str(self.device))
        self._rng.seed(context.seed)  # the action expert samples from noise: same seed, same episode
        self._episode_state = dict(INFERENCE_STATE)
        self.gripper.reset()
        if self.ensembler is not None:
            self.ensembler.reset()

    @contextmanager
    def _own_state(self) -> Iterator[None]:
        """The model keeps the episode's cached answer on itself; forks of a shared policy share the model, so each
        call swaps this instance's state (and random stream) in and takes it back out."""
        episode = getattr(self, "_episode_state", None)
        if episode is None:  # act() before any reset(): the model's own state, as before
            yield
            return
        saved = {k: getattr(self.model, k) for k in INFERENCE_STATE if hasattr(self.model, k)}
        for key, value in episode.items():
            if hasattr(self.model, key):
                setattr(self.model, key, value)
        try:
            with self._rng.active():
                yield
        finally:
            self._episode_state = {k: getattr(self.model, k) for k in INFERENCE_STATE if hasattr(self.model, k)}
            for key, value in saved.items():
                setattr(self.model, key, value)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        with self._own_state():
            chunk, reasoning = self.chunk(self.images([obs])[0], instruction)
        actions = self.ensembler(chunk)[None] if self.ensembler is not None else chunk[: self.execute_steps]
        return PolicyStep(apply_gripper(actions, self.gripper), reasoning=reasoning)

    def act_batch(self, observations: list[Observation], instructions: list[str]) -> list[PolicyStep]:
        # each call depends on the episode so far (the cached answer, ensembling, the gripper): the same calls in order
        return [self.act(o, i) for o, i in zip(observations, instructions, strict=True)]

    def info(self) -> dict[str, Any]:
        ens = None if self.ensembler is None else {"alpha": self.ensembler.alpha, "horizon": self.ensembler.horizon}
        return {
            **super().info(),
            "code": self.code,
            "stage": self.stage,
            "unnorm_key": self.unnorm_key,
            "ensemble": ens,
            "robot": self.gripper.robot,
            "sticky_repeat": self.gripper.repeat,
            "prompt": "What action should the robot take to {instruction}?"
            + (" First answer my question." if self.reasons else ""),
        }


class DualVLAAdapter(InstructVLAAdapter):
    """DualVLA: InstructVLA's architecture and code, a local checkpoint (its weights are not public), reasoning on."""

    name = "dualvla"
    default_path = ""
    reasons = True
    default_reasoning = True
    needs = (
        f"a local DualVLA checkpoint (weights not public: -M path=RUN_DIR) and the InstructVLA code it loads "
        f"with ({REPO}, its pip_requirements.txt and {ASSETS} in its ckpt/; -M code=DIR); a CUDA GPU"
    )

    def __init__(self, path: str | None = None, **options: Any) -> None:
        if not path:
            raise ValueError(
                "adapter 'dualvla' needs your checkpoint: DualVLA's weights are not public. Pass "
                "-M path=/ckpt/RUN_DIR (or RUN_DIR/checkpoints/NAME.pt) and "
                "-M code=/path/to/InstructVLA"
            )
        super().__init__(path=path, **options)
