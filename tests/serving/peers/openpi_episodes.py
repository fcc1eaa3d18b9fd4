"""Runs in openpi-client's own environment: episodes through openpi's WebsocketClientPolicy, as openpi's examples do
(a new client per episode; reset() between). Prints one JSON line: the server's metadata and, per episode, the
actions (and reasoning) the server answered. Usage: openpi_episodes.py URL EPISODES STEPS [API_KEY]."""

from __future__ import annotations

import json
import sys

import numpy as np
from observations import openpi as observation
from openpi_client.websocket_client_policy import WebsocketClientPolicy


def main() -> None:
    url, episodes, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    api_key = sys.argv[4] if len(sys.argv) > 4 else None
    out: dict = {"episodes": []}
    for episode in range(episodes):
        policy = WebsocketClientPolicy(url, api_key=api_key)
        out["metadata"] = policy.get_server_metadata()
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
