"""The observations the peers' scripts send, importable without their packages (the tests compute the served
policy's answers to them)."""

from __future__ import annotations

from typing import Any

import numpy as np


def openpi(episode: int, step: int) -> dict[str, Any]:
    """An observation map of LIBERO-style openpi configs (peers/openpi_episodes.py)."""
    image = np.full((24, 32, 3), (episode * 40 + step * 7) % 256, dtype=np.uint8)
    image[0, 0] = [1, 2, 3]
    return {
        "observation/image": image,
        "observation/wrist_image": np.zeros((24, 32, 3), dtype=np.uint8),
        "observation/state": np.arange(8, dtype=np.float64) * (step + 1),
        "prompt": "put the cube on the plate" + "!" * episode,
    }


def vla_eval(episode: int, step: int) -> dict[str, Any]:
    """An observation of vla-eval's convention (peers/vla_eval_bench.py)."""
    image = np.full((24, 32, 3), (episode * 50 + step * 9) % 256, dtype=np.uint8)
    image[1, 2] = [200, 100, 0]
    return {
        "images": {"primary": image},
        "task_description": "stack the blocks" + "." * episode,
        "state": np.arange(6, dtype=np.float32) + step,
    }
