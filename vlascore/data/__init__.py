"""Training-data tools from the DualVLA method: dual-layer reasoning pruning over recorded trajectories.

`trajectory` is the source-neutral view of one episode (pose, gripper, texts, frames); `sources` reads it from a
vlascore run or a LeRobot-format dataset (`lerobot`); `kinematic` is the parameter-free action layer; `triggers`
holds the scene-layer registry (frame difference, intention change, a learned detector in `learned`); `prune`
combines the layers, applies an ablation and writes a pruned copy with per-step labels; `view` renders the visual
check. See docs/dualvla_data.md.
"""
