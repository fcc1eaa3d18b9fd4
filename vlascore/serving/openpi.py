"""Talking to openpi-style policy servers (openpi's `scripts/serve_policy.py`, `openpi_client`).

Their protocol is smaller than ours: the server sends a metadata map on connect, then answers each observation map
with a map whose `actions` is a chunk (n, dim); a failure arrives as a text frame (a traceback) and the server closes
the connection. The observation keys depend on the openpi config (`observation/image`, `observation/state`,
`prompt` for LIBERO-style ones), and the metadata says nothing about the action convention, so both the key mapping
and the convention are -M options of the remote adapter (docs/serving.md, "openpi-style servers").
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from vlascore.backends.base import Observation
from vlascore.suites import ActionSpace

ACTION_PREFIX = "action_"
PRESETS: dict[str, dict[str, Any]] = {
    # openpi's examples/libero/main.py: the agentview and wrist images (the libero backend turns them as that
    # script does), the state eef_pos + axis-angle + the two finger joints (8 numbers), and actions in LIBERO's own
    # convention (what its pi0 / pi0-FAST / pi0.5 LIBERO configs return, 7 numbers per step).
    "libero": {
        "image_key": "observation/image",
        "camera_keys": ("robot0_eye_in_hand:observation/wrist_image",),
        "state_key": "observation/state",
        "state": ("eef_pos", "eef_axis_angle", "gripper_qpos"),
        "prompt_key": "prompt",
        "actions_key": "actions",
        "action_space": {
            "mode": "ee_delta",
            "rotation": "axis_angle",
            "dim": 7,
            "normalized": True,
            "gripper_open": -1,
        },
    },
}
"""-M preset=NAME: the key mapping and action convention of a family of served configs; other -M options override
single entries."""


def split_options(
    options: dict[str, Any],
    names: set[str],
    protocol: str,
    plain: dict[str, Any] | None = None,
    space: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`-M` options of a protocol mapping split into its own (`names`) and the `action_<field>` ActionSpace fields,
    over the defaults `plain` and `space`; unknown keys raise TypeError naming the known ones."""
    plain, space = dict(plain or {}), dict(space or {})
    unknown = []
    for key, value in options.items():
        if key in names:
            plain[key] = value
        elif key.startswith(ACTION_PREFIX) and key[len(ACTION_PREFIX) :] in ActionSpace.model_fields:
            space[key[len(ACTION_PREFIX) :]] = value
        else:
            unknown.append(key)
    if unknown:
        known = ", ".join(sorted(names)) + ", " + ", ".join(ACTION_PREFIX + f for f in ActionSpace.model_fields)
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))} for -M protocol={protocol}; known: {known}")
    return plain, space


def chunk_options(plain: dict[str, Any]) -> tuple[int, int | None]:
    """`chunk_size` (default 1) and `execute` (None: the whole chunk), checked."""
    chunk = int(plain.get("chunk_size", 1))
    execute = plain.get("execute")
    if chunk < 1:
        raise ValueError(f"-M chunk_size must be >= 1, got {chunk}")
    if execute is not None and not 1 <= int(execute) <= chunk:
        raise ValueError(f"-M execute must be in 1..chunk_size={chunk}, got {execute}")
    return chunk, None if execute is None else int(execute)


def state_vector(obs: Observation, keys: tuple[str, ...]) -> np.ndarray:
    """The proprio entries `keys` (`-M state=`), flattened and concatenated in order (float64)."""
    missing = [k for k in keys if k not in obs.proprio]
    if missing:
        raise ValueError(
            f"-M state names {', '.join(missing)}, not in this backend's proprio ({', '.join(obs.proprio) or 'none'})"
        )
    parts = [np.asarray(obs.proprio[k], dtype=np.float64).reshape(-1) for k in keys]
    return np.concatenate(parts) if parts else np.zeros(0)


def _keys(value: Any) -> tuple[str, ...]:
    """A list option given as a YAML list or as comma-separated text (`-M state=ee_pose,qpos`)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    raise ValueError(f"expected a comma-separated list, got {value!r}")


@dataclass(frozen=True)
class OpenpiOptions:
    """How vlascore observations become an openpi observation map, and what the server's actions mean."""

    image_key: str = "observation/image"
    """Key of the camera image (HxWx3 uint8, the suite's resolution; openpi models resize it themselves). Empty:
    send no image."""
    state_key: str = "observation/state"
    """Key of the state vector. Empty: send no state."""
    state: tuple[str, ...] = ("qpos",)
    """Proprio entries (qpos, qvel, ee_pose), flattened and concatenated in this order, that make the state."""
    prompt_key: str = "prompt"
    """Key of the instruction text."""
    actions_key: str = "actions"
    """Key of the action chunk in the server's reply."""
    blank_image_keys: tuple[str, ...] = ()
    """Image keys the served config requires but the suite has no camera for (e.g. observation/wrist_image): sent as
    black images of the main image's shape."""
    camera_keys: tuple[str, ...] = ()
    """Other cameras, as `camera:key` pairs (e.g. `robot0_eye_in_hand:observation/wrist_image`): the backend's
    image of that camera (Observation.extra_images) is sent under that key."""
    preset: str = ""
    """The preset the other options started from (PRESETS), or '' for none."""
    chunk_size: int = 1
    """Actions per reply (the served config's action horizon); a longer reply is refused."""
    execute: int | None = None
    """How many actions of each chunk run before the next call (receding horizon); None: the whole chunk."""
    action_space: ActionSpace = field(default_factory=ActionSpace)
    """The convention of the server's actions (from the `action_<field>` options), checked against the task."""

    @classmethod
    def parse(cls, options: dict[str, Any]) -> OpenpiOptions:
        """The options from `-M key=value` pairs; unknown keys raise TypeError naming the known ones."""
        names = {f.name for f in fields(cls)} - {"action_space"}
        preset = str(options.get("preset") or "")
        if preset and preset not in PRESETS:
            raise ValueError(f"-M preset={preset!r} is not one of {', '.join(PRESETS)}")
        defaults = dict(PRESETS.get(preset, {}))
        plain: dict[str, Any] = {k: v for k, v in defaults.items() if k != "action_space"}
        space: dict[str, Any] = dict(defaults.get("action_space", {}))
        plain, space = split_options(options, names, "openpi", plain, space)
        for key in ("state", "blank_image_keys", "camera_keys"):
            if key in plain:
                plain[key] = _keys(plain[key])
        bad = [pair for pair in plain.get("camera_keys", ()) if not all(pair.partition(":")[::2])]
        if bad:
            raise ValueError(f"-M camera_keys takes camera:key pairs, got {', '.join(bad)}")
        plain["preset"] = preset
        for key in ("image_key", "state_key", "prompt_key", "actions_key"):
            if key in plain:
                plain[key] = "" if plain[key] is None else str(plain[key])
        if not plain.get("prompt_key", cls.prompt_key):
            raise ValueError("-M prompt_key cannot be empty: openpi policies are language-conditioned")
        plain["chunk_size"], plain["execute"] = chunk_options(plain)
        return cls(**plain, action_space=ActionSpace(**space))

    def config(self) -> dict[str, Any]:
        """The options as stored in the run record (they change what the policy sees and does)."""
        return {
            "image_key": self.image_key,
            "state_key": self.state_key,
            "state": list(self.state),
            "prompt_key": self.prompt_key,
            "actions_key": self.actions_key,
            "blank_image_keys": list(self.blank_image_keys),
            "chunk_size": self.chunk_size,
            "execute": self.execute,
            "action_space": self.action_space.model_dump(),
            # added later: stored only when used, so earlier runs keep resuming
            **({"camera_keys": list(self.camera_keys)} if self.camera_keys else {}),
            **({"preset": self.preset} if self.preset else {}),
        }

    def observation(self, obs: Observation, instruction: str) -> dict[str, Any]:
        """The openpi observation map of `obs`."""
        out: dict[str, Any] = {}
        if self.image_key:
            if obs.image is None:
                raise ValueError(
                    "the task renders no camera image, but -M image_key is set: pass -M image_key= to send none"
                )
            image = np.ascontiguousarray(obs.image, dtype=np.uint8)
            out[self.image_key] = image
            for key in self.blank_image_keys:
                out[key] = np.zeros_like(image)
        for pair in self.camera_keys:
            camera, _, key = pair.partition(":")
            if camera not in obs.extra_images:
                have = ", ".join(obs.extra_images) or "none"
                raise ValueError(
                    f"-M camera_keys names camera {camera!r}, which this backend does not render (its other cameras: "
                    f"{have}); for LIBERO, drop -B wrist=false"
                )
            out[key] = np.ascontiguousarray(obs.extra_images[camera], dtype=np.uint8)
        if self.state_key:
            out[self.state_key] = state_vector(obs, self.state)
        out[self.prompt_key] = instruction
        return out

    def actions(self, reply: Any, url: str) -> np.ndarray:
        """The (k, dim) action chunk of a server reply, checked against the declared dim and chunk size."""
        if not isinstance(reply, dict) or self.actions_key not in reply:
            keys = ", ".join(map(str, reply)) if isinstance(reply, dict) else type(reply).__name__
            raise ValueError(
                f"the openpi server at {url} replied without {self.actions_key!r} (got: {keys}); set -M actions_key="
            )
        actions = np.asarray(reply[self.actions_key])
        if actions.ndim == 1:
            actions = actions[None, :]
        dim = self.action_space.dim
        if actions.ndim != 2 or actions.shape[1] != dim:
            raise ValueError(
                f"the openpi server at {url} returned actions of shape {actions.shape}, but the declared "
                f"convention has -M action_dim={dim}"
            )
        if actions.shape[0] > self.chunk_size:
            raise ValueError(
                f"the openpi server at {url} returned a chunk of {actions.shape[0]} actions, more than "
                f"-M chunk_size={self.chunk_size}: pass -M chunk_size={actions.shape[0]} (and "
                "-M execute=K to run only the first K of each chunk)"
            )
        return actions
