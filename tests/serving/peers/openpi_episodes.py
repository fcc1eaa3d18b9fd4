"""Runs in openpi-client's own environment: episodes through openpi's WebsocketClientPolicy, as openpi's examples do
(a new client per episode; reset() between). Prints one JSON line: the server's metadata and, per episode, the
actions (and reasoning) the server answered. Usage: openpi_episodes.py URL EPISODES STEPS [API_KEY].

With PEER_BARRIER=DIR and PEER_PARTIES=N in the environment, each episode's client waits, once connected, until N
clients are connected for that episode (a file each in DIR), so that their requests meet at the server."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from observations import openpi as observation
from openpi_client.websocket_client_policy import WebsocketClientPolicy


def barrier(episode: int) -> None:
    folder = os.environ.get("PEER_BARRIER")
    if not folder:
        return
    parties = int(os.environ["PEER_PARTIES"])
    (Path(folder) / f"{episode}.{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while len(list(Path(folder).glob(f"{episode}.*"))) < parties:
        if time.monotonic() > deadline:
            sys.exit(f"barrier: fewer than {parties} clients reached episode {episode} within 60 s")
        time.sleep(0.01)


def main() -> None:
    url, episodes, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    api_key = sys.argv[4] if len(sys.argv) > 4 else None
    out: dict = {"episodes": []}
    for episode in range(episodes):
        policy = WebsocketClientPolicy(url, api_key=api_key)
        out["metadata"] = policy.get_server_metadata()
        barrier(episode)
        policy.reset()
        seen = []
        for step in range(steps):
            reply = policy.infer(observation(episode, step))
            seen.append(
                {
                    "actions": np.asarray(reply["actions"]).tolist(),
                    "dtype": str(reply["actions"].dtype),
                    "reasoning": reply.get("reasoning"),
                    "timing": sorted(reply["server_timing"]),
                }
            )
        out["episodes"].append(seen)
        policy._ws.close()  # openpi-client has no close(); its connection is the episode
    print(json.dumps(out))


if __name__ == "__main__":
    main()
