"""How long `vlascore data prune` takes on a 1,000-episode run (target: under a minute on a 2-core machine).

The run is synthesised from recorded episodes: each episode of SOURCE (by default a scripted-expert tabletop run of
2 seeds per task, recorded first with ManiSkill on the CPU) is copied under new ids until there are --episodes,
through RunStore (the frames files are hard links), so the pruner reads real trajectories and real 128x128 frames.
It then prunes with the default frame-diff trigger (which decodes every frame) and with the intention trigger
(which needs none), and prints the times.

    python benchmarks/prune_scale.py                      # records the source run first (about a minute)
    python benchmarks/prune_scale.py --source runs/scripted --episodes 1000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from vlascore.data.prune import prune
from vlascore.records import StepRecord
from vlascore.store import RunStore


def record_source(out: Path) -> Path:
    from vlascore import runner
    from vlascore.suites import load_suite

    runner.run(model="scripted", suite=load_suite("tabletop"), out=out, episodes=2)
    return out


def synthesise(source: Path, out: Path, episodes: int) -> Path:
    src = RunStore(source)
    dst = RunStore(out)
    dst.write_run(src.read_run())
    records = [e for e in src.episode_records() if e.status == "ok"]
    steps = src.steps_frame()
    by_episode = {eid: g for eid, g in steps.groupby("episode_id", sort=False)}
    for i in range(episodes):
        ep = records[i % len(records)]
        eid = f"{ep.task}-{i}"
        rows = by_episode[ep.episode_id].to_dict("records")
        step_records = [StepRecord(**{**r, "episode_id": eid}) for r in rows]
        frames_file = None
        if ep.frames_file:
            target = dst.frames_path(eid)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(src.frames_path(ep.episode_id), target)
            frames_file = str(target.relative_to(out))
        dst.write_episode(
            ep.model_copy(update={"episode_id": eid, "seed": i, "frames_file": frames_file}), step_records
        )
    dst.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="A recorded run [default: record a scripted tabletop run].")
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = args.source or record_source(work / "source")
        run = synthesise(source, work / "big", args.episodes)
        steps = RunStore(run).conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        print(f"synthesised {args.episodes} episodes, {steps} steps, from {source}")
        for trigger in ("frame-diff", "intention"):
            start = time.perf_counter()
            record = prune(run, work / f"pruned-{trigger}", trigger=trigger)
            seconds = time.perf_counter() - start
            kept = record.stats[-1]
            per_episode = 1000 * seconds / kept.episodes
            print(
                f"{trigger:>10}: {seconds:6.1f} s for {kept.episodes} episodes ({per_episode:.1f} ms per episode), "
                f"{100 * (kept.kept_fraction or 0):.1f}% of the reasoning kept; target < 60 s: "
                f"{'met' if seconds < 60 else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
