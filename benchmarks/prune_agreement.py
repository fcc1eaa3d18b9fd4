"""Do the kept steps cluster at the phase changes the scripted expert narrates? (real ManiSkill tabletop runs)

Records the scripted expert on the tabletop suite (--episodes seeds per task; it states its current phase as its
intention), labels every step with each scene trigger and each rule (the method and its ablations), and prints,
for a tolerance of 1 and 2 steps: the share of kept steps near a phase change (precision), what choosing steps at
random would give (chance: the share of all reasoning steps near a change), and the share of phase changes with a
kept step near them (recall). The intention trigger reads the narrated phases themselves: its figures are a
ceiling, not a test.

    python benchmarks/prune_agreement.py                  # records 5 tasks x 10 seeds first (a few minutes)
    python benchmarks/prune_agreement.py --source runs/scripted
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

from vlascore.data.agreement import phase_agreement
from vlascore.data.opening import open_source
from vlascore.data.prune import apply_ablation, label_source
from vlascore.data.sources import EpisodeFailure
from vlascore.data.triggers import make_trigger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="A scripted-expert run [default: record one].")
    parser.add_argument("--episodes", type=int, default=10, help="Seeds per task when recording.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source_path = args.source
        if source_path is None:
            from vlascore import runner
            from vlascore.suites import load_suite

            source_path = Path(tmp) / "scripted"
            runner.run(model="scripted", suite=load_suite("tabletop"), out=source_path, episodes=args.episodes)
        source = open_source(source_path)
        trajectories = {t.episode_id: t for t in source.trajectories() if not isinstance(t, EpisodeFailure)}
        print(f"{source_path}: {len(trajectories)} episodes, {sum(len(t) for t in trajectories.values())} steps")
        print(
            f"{'trigger':<11} {'rule':<10} {'kept':>6}  "
            + "  ".join(f"tol {tol}: precision / chance / recall" for tol in (1, 2))
        )
        for trigger in ("frame-diff", "intention"):
            labelled, _ = label_source(source, make_trigger(trigger))
            for rule in ("dual", "no-action", "no-scene", "random"):
                episodes = copy.deepcopy(labelled)
                apply_ablation(episodes, rule)  # type: ignore[arg-type]
                triples = [(trajectories[e.episode_id], e.kept, e.has_reasoning) for e in episodes]
                cells = []
                for tol in (1, 2):
                    a = phase_agreement(triples, tol)
                    cells.append(f"{a.precision:>13.3f} / {a.chance:.3f} / {a.recall:.3f}")
                kept = sum(int(e.kept.sum()) for e in episodes) / max(
                    sum(int(e.has_reasoning.sum()) for e in episodes), 1
                )
                print(f"{trigger:<11} {rule:<10} {kept:>6.1%}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
