"""Per-step overhead of `vlascore run` (trace recording included) against a bare env.step + policy loop.

Both sides run the same ManiSkill task, env settings, seeds and random policy in this process; only
the episode loops are timed (from the end of the first episode to the end of the last, so env
construction is excluded on both sides). Rounds alternate bare / vlascore to spread machine noise, and
the median per-step time of each side is compared. Target: ratio <= 1.05.

    python benchmarks/overhead.py [--task PickCube] [--episodes 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vlascore import load_run, runner
from vlascore.backends.maniskill import ManiSkillBackend
from vlascore.suites import load_suite


def bare_loop(task, seeds: list[int]) -> float:  # type: ignore[no-untyped-def]
    """Seconds per step of env.step(policy(obs)) for seeds[1:], with the same env and policy as vlascore."""
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401 - registers the ManiSkill env ids

    env = gym.make(task.env_id, **ManiSkillBackend().env_kwargs(task))
    steps, start = 0, 0.0
    for i, seed in enumerate(seeds):
        if i == 1:
            start, steps = time.perf_counter(), 0
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)  # the `random` adapter's policy, inline
        for _ in range(task.max_steps):
            obs, _r, _term, _trunc, info = env.step(rng.uniform(-1.0, 1.0, size=7).astype(np.float32))
            steps += 1
            if bool(info["success"].reshape(-1)[0]):
                break
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed / steps


def vlascore_loop(suite, task_id: str, episodes: int, out: Path) -> float:  # type: ignore[no-untyped-def]
    """Seconds per step of `vlascore run -m random` for episodes 2..N (env built before episode 1)."""
    ends: list[float] = []
    runner.run(
        model="random",
        suite=suite,
        tasks=[task_id],
        episodes=episodes,
        out=out,
        on_episode=lambda _ep: ends.append(time.perf_counter()),
    )
    steps = int(load_run(out).episodes["num_steps"].iloc[1:].sum())
    return (ends[-1] - ends[0]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="PickCube")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    suite = load_suite("tabletop")
    task = suite.task(args.task)
    seeds = task.seeds[: args.episodes]
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            bare.append(bare_loop(task, seeds))
            ours.append(vlascore_loop(suite, args.task, args.episodes, Path(tmp) / f"run{r}"))
            print(f"round {r + 1}: bare {1e3 * bare[-1]:.2f} ms/step, vlascore run {1e3 * ours[-1]:.2f} ms/step")
    b, v = statistics.median(bare), statistics.median(ours)
    print(f"task {args.task}, seeds {seeds[0]}..{seeds[-1]}, {args.rounds} rounds")
    print(f"bare env.step + policy: {1e3 * b:.2f} ms/step")
    print(f"vlascore run (recorded): {1e3 * v:.2f} ms/step")
    print(f"ratio vlascore/bare: {v / b:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
