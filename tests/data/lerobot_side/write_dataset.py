"""Run with the LeRobot test environment's python: writes a small LeRobot-format dataset with LeRobot's own writer
(LeRobotDataset.create / add_frame / save_episode / finalize) and, beside it, what was written (truth.npz).

    python write_dataset.py ROOT TRUTH.npz
"""

import sys
from pathlib import Path

import numpy as np
from ledataset.datasets.lerobot_dataset import LeRobotDataset

root, truth_path = Path(sys.argv[1]), Path(sys.argv[2])
features = {
    "observation.state": {"dtype": "float32", "shape": (7,), "names": ["x", "y", "z", "roll", "pitch", "yaw", "grip"]},
    "action": {"dtype": "float32", "shape": (7,), "names": None},
    "reasoning": {"dtype": "string", "shape": (1,), "names": None},
    "subtask": {"dtype": "string", "shape": (1,), "names": None},
    "observation.images.front": {"dtype": "video", "shape": (32, 32, 3), "names": ["height", "width", "channels"]},
}
dataset = LeRobotDataset.create("vlascore/lerobot-test", fps=10, features=features, root=root, use_videos=True)
rng = np.random.default_rng(0)
truth: dict[str, np.ndarray] = {}
for episode in range(3):
    n = 24 + 4 * episode
    t = np.arange(n)
    # Move along x, turn sharply at step 8 (then along y), close the gripper at step 12, open it at step 20.
    pos = np.zeros((n, 3))
    pos[:, 0] = 0.3 + 0.01 * np.minimum(t, 8)
    pos[:, 1] = 0.01 * np.maximum(t - 8, 0)
    pos[:, 2] = 0.2
    rpy = np.zeros((n, 3))
    rpy[:, 2] = 0.05 * t
    closed = (t >= 12) & (t < 20)
    state = np.concatenate([pos, rpy, closed[:, None] * 1.0], axis=1).astype(np.float32)
    phases = np.where(t < 8, "reach", np.where(t < 12, "descend", np.where(t < 20, "grasp and carry", "release")))
    frames = np.zeros((n, 32, 32, 3), dtype=np.uint8)
    for k in range(n):
        frames[k, 8:16, (k % 24) : (k % 24) + 8] = (200, 80 + 5 * episode, 40)
        frames[k, 20:28, 4:12] = 120
    for k in range(n):
        dataset.add_frame(
            {
                "observation.state": state[k],
                "action": np.concatenate([rng.normal(size=6), [1.0 - 2.0 * closed[k]]]).astype(np.float32),
                "reasoning": f"episode {episode} step {k}: {phases[k]} <b>",
                "subtask": str(phases[k]),
                "observation.images.front": frames[k],
                "task": f"pick task {episode % 2}",
            }
        )
    dataset.save_episode()
    truth[f"state_{episode}"] = state
    truth[f"frames_{episode}"] = frames
dataset.finalize()
np.savez(truth_path, **truth)
print("wrote", root)
