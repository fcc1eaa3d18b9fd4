"""VLM judge throughput against a local OpenAI-compatible server with injected latency (default 200 ms).

Judges the same 100 toy episodes through the real `openai` client and HTTP: sequentially (concurrency 1,
empty cache), at concurrency 16 (another empty cache), and again five times at concurrency 16 on that
filled cache (the median is reported: a cached pass takes milliseconds, so one timing is mostly noise).
The server (`python -m vlascore.judging.mockserver`) runs in its own process, as a real endpoint would, and
counts the chat requests it answers. Prints the times, the speed-ups and the calls each pass made.
Targets: concurrency-16 vs sequential >= 10x; cached re-judge vs first pass >= 100x with zero calls.

    python benchmarks/judge_throughput.py [--episodes 100] [--latency 0.2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from vlascore import runner
from vlascore.judging.engine import judge_run
from vlascore.suites import load_suite


def chat_calls(url: str) -> int:
    with urllib.request.urlopen(f"{url}/mock/stats", timeout=10) as reply:
        return int(json.load(reply)["chat_calls"])


def timed_pass(run: Path, url: str, cache: Path, concurrency: int) -> tuple[float, int, int]:
    """(seconds, chat calls the server answered, cache hits) of one judge pass."""
    before = chat_calls(url)
    start = time.perf_counter()
    result = judge_run(
        run, "vla-score", "mock-judge", base_url=url, concurrency=concurrency, cache_dir=cache, retrieval=False
    )
    seconds = time.perf_counter() - start
    assert all(j.status == "ok" for j in result.judgements), "a judgement failed"
    return seconds, chat_calls(url) - before, result.usage.cache_hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server waits per request")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-m", "vlascore.judging.mockserver", "--port", "0", "--latency", str(args.latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ")[1].split()[0]
        with tempfile.TemporaryDirectory() as tmp:
            base = load_suite("toy")
            task = base.tasks[0].model_copy(update={"seeds": list(range(args.episodes))})
            run = Path(tmp) / "run"
            runner.run(model="scripted", suite=base.model_copy(update={"tasks": [task]}), out=run)
            judge_run(
                run,
                "vla-score",
                "warm-up",
                base_url=url,
                episode_ids=[f"{task.id}-0"],
                cache_dir=None,
                use_cache=False,
                retrieval=False,
            )  # imports and first connection, outside the timings
            seq, seq_calls, _ = timed_pass(run, url, Path(tmp) / "cache-seq", 1)
            par, par_calls, _ = timed_pass(run, url, Path(tmp) / "cache-par", args.concurrency)
            again = [timed_pass(run, url, Path(tmp) / "cache-par", args.concurrency) for _ in range(5)]
    finally:
        server.terminate()
        server.wait(timeout=10)
    hit = statistics.median(t for t, _, _ in again)
    hit_calls, hits = sum(c for _, c, _ in again), again[-1][2]
    print(f"{args.episodes} episodes, {args.latency * 1000:.0f} ms per request, server in its own process")
    print(f"  sequential (concurrency 1):      {seq:7.2f} s  {seq_calls} calls")
    print(f"  concurrency {args.concurrency:<2}:                 {par:7.2f} s  {par_calls} calls")
    print(
        f"  cached re-judge (concurrency {args.concurrency}): {hit:7.3f} s  {hit_calls} calls in 5 passes, "
        f"{hits} cache hits each (median time)"
    )
    print(f"speed-up concurrency {args.concurrency} vs sequential: {seq / par:6.1f}x  (target >= 10x)")
    print(
        f"speed-up cached vs first pass (concurrency {args.concurrency}): {par / hit:6.1f}x  (target >= 100x, 0 calls)"
    )
    print(f"speed-up cached vs sequential first pass:      {seq / hit:6.1f}x")


if __name__ == "__main__":
    main()
