"""A tiny fake of InstructVLA's code and a checkpoint for it, built offline in a temporary directory.

`fake_instructvla_code(root)` lays out what the adapter imports from a clone of InternRobotics/InstructVLA:
`vla/instructvla_eagle_dual_sys_v2_meta_query_v2.py` (tiny_instructvla_code/, same `load_vla` and
`predict_action` signatures) and the `ckpt/` asset folders the real loader reads (Eagle2-2B, the empty LoRA).
`tiny_instructvla_checkpoint(run_dir, code)` writes a training run as the real loader expects it:
`config.json` (stage, future_action_window_size, num_of_meta_query), `dataset_statistics.json` and
`checkpoints/step-000100.pt` holding {"model": {group: state_dict}}.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

CODE = Path(__file__).with_name("tiny_instructvla_code")
MODULE = "vla.instructvla_eagle_dual_sys_v2_meta_query_v2"
BRIDGE = {
    "q01": [-0.02, -0.04, -0.03, -0.1, -0.1, -0.2, 0.0],
    "q99": [0.02, 0.04, 0.05, 0.1, 0.3, 0.2, 1.0],
    "mask": [True] * 6 + [False],
}
FRACTAL = {
    "q01": [-0.2, -0.2, -0.2, -0.5, -0.5, -0.5, 0.0],
    "q99": [0.2, 0.2, 0.2, 0.5, 0.5, 0.5, 1.0],
    "mask": [True] * 6 + [False],
}
STATISTICS = {"bridge_dataset": {"action": BRIDGE}, "fractal20220817_data": {"action": FRACTAL}}
_names = itertools.count()


def fake_instructvla_code(root: Path, *, assets: bool = True) -> Path:
    """Copy the fake package to `root` (a stand-in for a clone of the repository); `assets` adds ckpt/Eagle2-2B."""
    root = Path(root)
    shutil.copytree(CODE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    if assets:  # what ShuaiYang03/InstructVLA_Assets puts in ckpt/: the VLM and the empty language LoRA
        for name in ("Eagle2-2B", "empty_language_adapter"):
            (root / "ckpt" / name).mkdir(parents=True, exist_ok=True)
            (root / "ckpt" / name / "config.json").write_text("{}")
    return root


def tiny_instructvla_checkpoint(
    run_dir: Path,
    code: Path,
    *,
    stage: str = "stage2",
    future_action_window_size: int = 3,
    chunk: np.ndarray | None = None,
    answer: str = "the red cube is left of the green goal",
    head_scale: float = 0.0,
    noise_scale: float = 0.0,
    statistics: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """Write a run directory; returns the .pt file. `chunk` (future_action_window_size + 1, 7) is the normalised
    chunk the action expert returns when `head_scale` and `noise_scale` are 0; `answer` the stage-2 answer."""
    import torch

    file = Path(code) / f"{MODULE.replace('.', '/')}.py"
    spec = importlib.util.spec_from_file_location(f"_tiny_instructvla_{next(_names)}", file)
    assert spec is not None and spec.loader is not None
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)

    run_dir = Path(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    config = {
        "stage": stage,
        "future_action_window_size": future_action_window_size,
        "num_of_meta_query": 4,
        "vla": {"type": "instructvla"},
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    stats = statistics or STATISTICS
    (run_dir / "dataset_statistics.json").write_text(json.dumps(stats, indent=2))

    torch.manual_seed(seed)
    vla = fake.InstructVLA(stats, stage=stage, future_action_window_size=future_action_window_size, num_of_meta_query=4)
    with torch.no_grad():
        if chunk is not None:
            vla.action_model.chunk_bias.copy_(torch.as_tensor(np.asarray(chunk), dtype=torch.float32))
        vla.action_model.head_scale.fill_(head_scale)
        vla.action_model.noise_scale.fill_(noise_scale)
        words = [*answer.split(), "<|im_end|>"]
        for pos, word in enumerate(words):
            vla.vlm.language_model.answer_bias[pos, vla.tokenizer.index[word]] = 1e4
    state = {group: get(vla).state_dict() for group, get in fake.GROUPS.items()}
    pt = run_dir / "checkpoints" / "step-000100-epoch-01-loss=0.1000.pt"
    torch.save({"model": state}, pt)
    return pt
