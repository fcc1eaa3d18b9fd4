"""Runs in vla-eval's own environment: a vla-eval model server (vla-eval's PredictModelServer, served by vla-eval's
own serve_background) whose actions say what it was given, and which logs each episode_start, observation and
episode_end to a JSON-lines file. Prints `serving ws://HOST:PORT` and serves until killed.

Usage: vla_eval_model_server.py LOG CHUNK SPEC   (CHUNK 0: one action per observation; CHUNK n: a chunk of n;
SPEC `none` declares no action spec, `bridge` declares delta position, extrinsic euler and a positive-closing gripper)
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import numpy as np
from vla_eval.api import serve_background
from vla_eval.model_servers.base import SessionContext
from vla_eval.model_servers.predict import PredictModelServer
from vla_eval.specs import GRIPPER_CLOSE_POS, IMAGE_RGB, LANGUAGE, POSITION_DELTA, ROTATION_EULER, DimSpec


class Recorder(PredictModelServer):
    def __init__(self, log: str, chunk: int, spec: str) -> None:
        super().__init__()
        self.log, self.chunk, self.spec = log, chunk, spec
        self.lock = threading.Lock()
        self.episodes = 0

    def _write(self, **entry: Any) -> None:
        with self.lock, open(self.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def get_action_spec(self) -> dict[str, DimSpec]:
        if self.spec == "none":
            raise NotImplementedError  # vla-eval's server then declares none
        return {"position": POSITION_DELTA, "rotation": ROTATION_EULER, "gripper": GRIPPER_CLOSE_POS}

    def get_observation_spec(self) -> dict[str, DimSpec]:
        return {"image": IMAGE_RGB, "language": LANGUAGE}

    async def on_episode_start(self, config: dict[str, Any], ctx: SessionContext) -> None:
        self.episodes += 1
        self._write(event="start", task=config.get("task"))
        await super().on_episode_start(config, ctx)

    async def on_episode_end(self, result: dict[str, Any], ctx: SessionContext) -> None:
        self._write(event="end", result=result)
        await super().on_episode_end(result, ctx)

    def predict(self, obs: dict[str, Any], ctx: SessionContext) -> dict[str, Any]:
        image = next(iter(obs["images"].values()))
        state = np.asarray(obs["state"], dtype=np.float64)
        text = obs["task_description"]
        self._write(
            event="observation",
            step=ctx.step,
            cameras=sorted(obs["images"]),
            image_shape=list(image.shape),
            image_mean=float(image.mean()),
            state=state.tolist(),
            text=text,
        )
        row = [ctx.step / 100, float(image.mean()) / 255, float(state.sum()) / 100, len(text) / 100, 0.0, 0.0, -1.0]
        rows = [[*row[:4], i / 10, *row[5:]] for i in range(max(self.chunk, 1))]
        return {"actions": np.asarray(rows if self.chunk else rows[0], dtype=np.float32)}


def main() -> None:
    log, chunk, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    handle = serve_background(Recorder(log, chunk, spec), host="127.0.0.1", port=0)
    print(f"serving {handle.url}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
