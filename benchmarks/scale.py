"""How runs scale out: worker processes, a shared policy with dynamic batching, Ray, and real tabletop episodes.

Every figure is a ratio of two runs made here, one after the other, on the same machine. Throughput is counted from
the moment the workers are up and have built their first environments (`on_start`) to the last episode: starting
processes is a fixed cost per run, printed beside it, not a per-episode one.

  workers      toy backend whose step sleeps --step-ms (a GPU simulator's fixed step time), a cheap policy:
               2 workers vs 1 (target >= 1.8x), 4 vs 1 (target >= 3.2x)
  batching     8 workers, a shared policy whose call sleeps --policy-ms whatever the batch (up to 16: a GPU
               forward pass): dynamic batching vs the same shared policy one call at a time (target >= 4x)
  ray          the `workers` setting at N workers: Ray actors (a local Ray) vs local processes (overhead <= 15%)
  tabletop     ManiSkill3 PickCube on the CPU, rendered, random policy: 2 workers vs 1 (printed and explained)

    python benchmarks/scale.py [--only workers,batching,ray,tabletop] [--episodes 16] [--step-ms 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vlascore import runner
from vlascore.adapters import ADAPTERS, Adapter, PolicyStep
from vlascore.backends import Observation
from vlascore.scale import make_executor
from vlascore.suites import Suite, load_suite


class FixedLatencyPolicy(Adapter):
    """Zero actions after a fixed sleep per call, batched or not (a GPU forward pass costs about the same for any
    batch up to its size)."""

    name = "fixed-latency"

    def __init__(self, latency_ms: float = 20.0) -> None:
        super().__init__(latency_ms=latency_ms)
        self.latency = float(latency_ms) / 1000.0

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        time.sleep(self.latency)
        return PolicyStep(np.zeros(7))

    def act_forks(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep]:
        time.sleep(self.latency)
        return [PolicyStep(np.zeros(7)) for _ in forks]


ADAPTERS.register(FixedLatencyPolicy.name, FixedLatencyPolicy)


def toy(episodes: int, steps: int) -> Suite:
    suite = load_suite("toy")
    task = suite.tasks[0].model_copy(update={"seeds": list(range(episodes)), "max_steps": steps})
    return suite.model_copy(update={"tasks": [task]})


def timed(out: Path, **kwargs: Any) -> tuple[float, float]:
    """(episodes per second after start-up, seconds of start-up) of one runner.run."""
    marks: dict[str, float] = {"begin": time.perf_counter()}
    count = [0]

    def started(todo: int, skipped: int) -> None:
        marks["start"] = time.perf_counter()

    def ended(_ep: Any) -> None:
        marks["end"] = time.perf_counter()
        count[0] += 1

    runner.run(out=out, on_start=started, on_episode=ended, **kwargs)
    return count[0] / (marks["end"] - marks["start"]), marks["start"] - marks["begin"]


def report(name: str, ratio: float, target: str, ok: bool | None) -> None:
    verdict = "" if ok is None else ("  ok" if ok else "  BELOW TARGET")
    print(f"{name:<44} {ratio:6.2f}x  (target {target}){verdict}", flush=True)


def workers_section(tmp: Path, episodes: int, step_ms: float) -> dict[int, float]:
    suite, options = toy(episodes, 30), {"step_seconds": step_ms / 1000.0}
    rates = {}
    for n in (1, 2, 4):
        executor = make_executor("local", workers=n) if n > 1 else None
        rate, startup = timed(tmp / f"w{n}", model="random", suite=suite, backend_options=options, executor=executor)
        rates[n] = rate
        print(f"  {n} worker(s): {rate:.2f} episodes/s (start-up {startup:.1f} s)", flush=True)
    report("workers: 2 vs 1 (sleeping step)", rates[2] / rates[1], ">= 1.8x", rates[2] / rates[1] >= 1.8)
    report("workers: 4 vs 1 (sleeping step)", rates[4] / rates[1], ">= 3.2x", rates[4] / rates[1] >= 3.2)
    return rates


def batching_section(tmp: Path, episodes: int, policy_ms: float) -> None:
    suite = toy(max(episodes, 16), 20)
    rates = {}
    for label, size in (("one call at a time", 1), ("dynamic batching", 16)):
        executor = make_executor("local", workers=8, policy="shared", max_batch_size=size, max_wait_ms=5)
        rate, startup = timed(
            tmp / f"b{size}",
            model=FixedLatencyPolicy.name,
            model_args={"latency_ms": policy_ms},
            suite=suite,
            executor=executor,
        )
        rates[size] = rate
        print(f"  8 workers, shared policy, {label}: {rate:.2f} episodes/s (start-up {startup:.1f} s)", flush=True)
    report("shared policy: batched vs unbatched (8 workers)", rates[16] / rates[1], ">= 4x", rates[16] / rates[1] >= 4)


def ray_section(tmp: Path, episodes: int, step_ms: float, workers: int) -> None:
    suite, options = toy(episodes, 30), {"step_seconds": step_ms / 1000.0}
    rates = {}
    for kind in ("local", "ray"):
        rate, startup = timed(
            tmp / kind,
            model="random",
            suite=suite,
            backend_options=options,
            executor=make_executor(kind, workers=workers),
        )
        rates[kind] = rate
        print(f"  {kind}, {workers} workers: {rate:.2f} episodes/s (start-up {startup:.1f} s)", flush=True)
    overhead = rates["local"] / rates["ray"] - 1
    print(f"{'ray vs local processes: overhead':<44} {100 * overhead:5.1f}%   (target <= 15%)", flush=True)


def tabletop_section(tmp: Path, episodes: int) -> None:
    tabletop = load_suite("tabletop")
    task = tabletop.task("PickCube").model_copy(update={"seeds": list(range(episodes)), "max_steps": 50})
    suite = tabletop.model_copy(update={"tasks": [task]})
    rates = {}
    for n in (1, 2):
        executor = make_executor("local", workers=n) if n > 1 else None
        rate, startup = timed(tmp / f"t{n}", model="random", suite=suite, executor=executor)
        rates[n] = rate
        print(f"  PickCube, {n} worker(s): {rate:.3f} episodes/s (start-up and env build {startup:.1f} s)", flush=True)
    report("tabletop (ManiSkill3 CPU, rendered): 2 vs 1", rates[2] / rates[1], "none: see docs/scaling.md", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="workers,batching,ray,tabletop")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--policy-ms", type=float, default=20.0)
    parser.add_argument("--ray-workers", type=int, default=2)
    parser.add_argument("--tabletop-episodes", type=int, default=6)
    args = parser.parse_args()
    sections = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        if "workers" in sections:
            workers_section(tmp / "workers", args.episodes, args.step_ms)
        if "batching" in sections:
            batching_section(tmp / "batching", args.episodes, args.policy_ms)
        if "ray" in sections:
            ray_section(tmp / "ray", args.episodes, args.step_ms, args.ray_workers)
        if "tabletop" in sections:
            tabletop_section(tmp / "tabletop", args.tabletop_episodes)


if __name__ == "__main__":
    main()
