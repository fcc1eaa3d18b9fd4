"""How the comparison report and the leaderboard scale: 1,000 and 10,000 synthetic episodes.

For each size N it writes 4 synthetic runs of N/4 episodes (5 tabletop-like tasks, 60 steps each; see
synthetic.py), then times, in this process:
  - report: `vlascore report` of the 4 runs together (N episodes, 6 paired comparisons);
  - board: `vlascore submit` of each run and `leaderboard add` of the 4 bundles (validation recomputes every
    figure), then a fresh `leaderboard build` (4 model reports and the tables; N episodes in all).
Prints the times and the 10,000 / 1,000 ratios. Target: 10,000 episodes in under 10 s for the report and for the
build, and growth no worse than linear (ratio <= 10). Generating the runs is not timed.

    python benchmarks/report_scale.py [--sizes 1000,10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import TASKS, synthetic_judge, synthetic_run, synthetic_suite  # noqa: E402

from vlascore.board import Board, build_site  # noqa: E402
from vlascore.board.bundle import pack  # noqa: E402
from vlascore.report import write_report  # noqa: E402

RUNS = 4
SKILLS = (0.8, 0.6, 0.4, 0.2)


def timed(what: str, fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    print(f"  {what}: {seconds:.2f} s", flush=True)
    return seconds, out


def one_size(root: Path, episodes: int) -> dict[str, float]:
    per_task = episodes // (RUNS * TASKS)
    suite = synthetic_suite(per_task)
    board = root / "board"
    (board / "suites").mkdir(parents=True)
    (board / "suites" / f"{suite.name}.yaml").write_text(yaml.safe_dump(suite.model_dump(mode="json")))
    judge = synthetic_judge(board / "judges")
    print(f"{episodes} episodes: {RUNS} runs x {TASKS} tasks x {per_task} seeds", flush=True)
    start = time.perf_counter()
    runs = [synthetic_run(root / f"model-{i}", suite, per_task, skill, judge, seed=i) for i, skill in enumerate(SKILLS)]
    print(f"  (generated in {time.perf_counter() - start:.0f} s)", flush=True)
    out: dict[str, float] = {}
    out["report"], path = timed("report", lambda: write_report(runs, root / "report.html"))
    print(f"  report size: {path.stat().st_size / 1e6:.1f} MB")

    def submit_and_add() -> None:
        for i, run in enumerate(runs):
            bundle = pack(run, root / f"model-{i}.zip", name=f"synthetic model {i}")
            Board(board).add(bundle.path)

    out["add"], _ = timed(f"submit + add of {RUNS} bundles", submit_and_add)
    out["build"], summary = timed("board build", lambda: build_site(board, root / "site"))
    assert summary.reports_built == RUNS and not summary.report_errors, summary
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated episode counts (the first is the base)")
    parser.add_argument("--keep", type=Path, help="keep the runs, board and site in this folder")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        for n in sizes:
            folder = base / f"n{n}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            results[n] = one_size(folder, n)
    small, big = sizes[0], sizes[-1]
    print()
    print(f"{'':>16}" + "".join(f"{n:>12}" for n in sizes) + f"{'ratio':>10}")
    for key, label in (("report", "report"), ("add", "submit + add"), ("build", "board build")):
        ratio = results[big][key] / results[small][key]
        print(f"{label:>16}" + "".join(f"{results[n][key]:>11.2f}s" for n in sizes) + f"{ratio:>10.1f}")
    print(
        f"\nepisodes ratio {big / small:.0f}; targets: {big} episodes in under 10 s (report, build), ratio <= "
        f"{big / small:.0f} (linear)"
    )
    for key in ("report", "build"):
        met = results[big][key] < 10 and results[big][key] / results[small][key] <= big / small
        print(f"  {key}: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
