"""Run with the LeRobot test environment's python: opens a dataset with LeRobot's own reader (LeRobotDataset) and
prints, as JSON, its episode count, frame count and every frame's (episode_index, frame_index, TEXT) where TEXT is
a text column [default: reasoning].

    python read_dataset.py ROOT [TEXT]
"""

import json
import sys

from ledataset.datasets.lerobot_dataset import LeRobotDataset

dataset = LeRobotDataset("vlascore/lerobot-test", root=sys.argv[1])
column = sys.argv[2] if len(sys.argv) > 2 else "reasoning"
table = dataset.hf_dataset.with_format(None)
print(
    json.dumps(
        {
            "episodes": dataset.meta.total_episodes,
            "frames": dataset.num_frames,
            "rows": [
                [int(e), int(k), r]
                for e, k, r in zip(table["episode_index"], table["frame_index"], table[column], strict=True)
            ],
        }
    )
)
