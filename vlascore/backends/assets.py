"""Simulator assets that are downloaded rather than shipped: where they live and how to get them.

Checked without importing the simulator, so `vlascore doctor` and a run can say what to download before building.
"""

from __future__ import annotations

import os
from pathlib import Path

# The ManiSkill3 SimplerEnv digital twins of BridgeData v2 and the asset packs each needs
# (mani_skill/utils/assets/data.py: pack id -> target path under the asset dir).
BRIDGE_TWINS = (
    "PutCarrotOnPlateInScene-v1",
    "PutSpoonOnTableClothInScene-v1",
    "StackGreenCubeOnYellowCubeBakedTexInScene-v1",
    "PutEggplantInBasketScene-v1",
)
ASSET_PACKS = {"bridge_v2_real2sim": "tasks/bridge_v2_real2sim_dataset", "widowx250s": "robots/widowx"}
ENV_PACKS = {env_id: ("bridge_v2_real2sim", "widowx250s") for env_id in BRIDGE_TWINS}


def maniskill_asset_dir() -> Path:
    """ManiSkill3's asset directory: $MS_ASSET_DIR/data, default ~/.maniskill/data (as mani_skill.ASSET_DIR)."""
    return Path(os.getenv("MS_ASSET_DIR", os.path.join(os.path.expanduser("~"), ".maniskill"))) / "data"


def missing_packs(env_id: str) -> list[str]:
    """Asset packs `env_id` needs that are not downloaded."""
    root = maniskill_asset_dir()
    return [p for p in ENV_PACKS.get(env_id, ()) if not any((root / ASSET_PACKS[p]).glob("*"))]


def download_command(packs: list[str]) -> str:
    return " && ".join(f"python -m mani_skill.utils.download_asset {p} -y" for p in packs)


def missing_assets(env_id: str) -> str:
    """'' when `env_id` has its assets; else what is missing and the command that downloads it."""
    packs = missing_packs(env_id)
    if not packs:
        return ""
    return (
        f"{env_id} needs the ManiSkill asset pack(s) {', '.join(packs)}, not found under "
        f"{maniskill_asset_dir()} (set MS_ASSET_DIR to use another place): download them with "
        f"`{download_command(packs)}`"
    )
