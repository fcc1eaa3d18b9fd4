"""A tiny SpatialVLA checkpoint built offline: config.json whose `auto_map` names remote code shipped in the
directory (tiny_spatialvla_code/, same module and class names and call signatures as the real checkpoint's),
processor_config.json with statistics, action grids and chunk settings, a word-level tokenizer and SigLIP-style
image processor, and random weights. The adapter loads it through transformers' remote-code path for real.

`actions` forces the greedy decode: one (translation cell, rotation cell, gripper bin) triple per chunk step,
cells indexed on the grids below, so a test can compute the expected actions by hand. Without it the random
weights pick each step's tokens (among those the position may hold), so outputs depend on image and prompt.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tiny_hf import build_tokenizer

CODE = Path(__file__).with_name("tiny_spatialvla_code")
EDGES = [-1.0, -0.5, 0.0, 0.5, 1.0]  # 4 cells per axis, centres -0.75 -0.25 0.25 0.75
CENTRES = [-0.75, -0.25, 0.25, 0.75]
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
STATISTICS = {"bridge_orig/1.0.0": {"action": BRIDGE}, "fractal20220817_data/0.1.0": {"action": FRACTAL}}
AUTO_MAP = {
    "AutoConfig": "configuration_spatialvla.SpatialVLAConfig",
    "AutoModel": "modeling_spatialvla.SpatialVLAForConditionalGeneration",
}
Cell = tuple[int, int, int]


def action_ids(begin: int, actions: list[tuple[Cell, Cell, int]]) -> list[int]:
    """Token ids of (translation cell, rotation cell, gripper) triples; action tokens start at `begin`."""
    ids = []
    for (t0, t1, t2), (r0, r1, r2), grip in actions:
        ids += [begin + t0 * 16 + t1 * 4 + t2, begin + 64 + r0 * 16 + r1 * 4 + r2, begin + 128 + grip]
    return ids


def tiny_spatialvla(
    path: Path,
    *,
    chunk: int = 4,
    actions: list[tuple[Cell, Cell, int]] | None = None,
    num_obs_steps: int = 1,
    obs_delta: int = 1,
    statistics: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    import torch
    from transformers import SiglipImageProcessorPil
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for src in CODE.glob("*.py"):
        shutil.copy(src, path / src.name)
    tokenizer = build_tokenizer()
    begin = len(tokenizer)  # the processor appends its 130 action tokens to the vocabulary when it loads
    tokenizer.save_pretrained(path)
    SiglipImageProcessorPil(
        size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=3
    ).save_pretrained(path)
    grid = {"theta_bins": EDGES, "phi_bins": EDGES, "r_bins": EDGES}
    rot_grid = {"roll_bins": EDGES, "pitch_bins": EDGES, "yaw_bins": EDGES}
    intrinsic = {"width": 224, "height": 224, "intrinsic": [[200.0, 0, 112], [0, 200.0, 112], [0, 0, 1]]}
    processor_config = {
        "auto_map": {"AutoProcessor": "processing_spatialvla.SpatialVLAProcessor"},
        "processor_class": "SpatialVLAProcessor",
        "statistics": statistics or STATISTICS,
        "bin_policy": {"translation": grid, "rotation": rot_grid},
        "intrinsic_config": {"bridge_orig/1.0.0": intrinsic, "default": intrinsic},
        "action_config": {
            "num_bins": {
                "translation": {"theta_bins": 4, "phi_bins": 4, "r_bins": 4},
                "rotation": {"roll_bins": 4, "pitch_bins": 4, "yaw_bins": 4},
                "gripper": 2,
            },
            "use_spherical": False,
        },
        "num_obs_steps": num_obs_steps,
        "obs_delta": obs_delta,
        "action_chunk_size": chunk,
    }
    (path / "processor_config.json").write_text(json.dumps(processor_config, indent=2))

    config_cls = get_class_from_dynamic_module(AUTO_MAP["AutoConfig"], str(path))
    model_cls = get_class_from_dynamic_module(AUTO_MAP["AutoModel"], str(path))
    vocab = begin + 130
    config = config_cls(
        vocab_size=vocab,
        hidden_size=16,
        image_size=224,
        patch_size=56,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        action_token_begin_idx=begin,
        max_new_tokens=3 * chunk + 1,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.auto_map = AUTO_MAP
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    with torch.no_grad():
        if actions is None:  # the random weights choose, among the tokens each position may hold, then the end
            model.action_bias.fill_(-1e4)
            for pos in range(3 * chunk):
                first = begin + (0, 64, 128)[pos % 3]
                model.action_bias[pos, first : first + (64, 64, 2)[pos % 3]] = 0.0
            model.action_bias[3 * chunk, tokenizer.eos_token_id] = 0.0
        else:
            if len(actions) != chunk:
                raise ValueError(f"give {chunk} actions, got {len(actions)}")
            for pos, token in enumerate([*action_ids(begin, actions), tokenizer.eos_token_id]):
                model.action_bias[pos, token] = 1e4
    model.save_pretrained(path)
    return path
