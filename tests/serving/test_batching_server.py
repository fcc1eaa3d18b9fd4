"""`vlascore serve --max-batch-size`: one adapter instance, a session (its own fork) per client, and requests from
several clients answered by one batched call, with the same records as in-process runs."""

from __future__ import annotations

import signal
from pathlib import Path

from conftest import small_suite
from servekit import ServeProcess, served

from vlascore import runner
from vlascore.adapters import EpisodeContext
from vlascore.scale import make_executor
from vlascore.serving.remote import RemoteAdapter
from vlascore.suites import Suite

TIMING_AND_PROVENANCE = ["started_at", "duration_s", "policy_time_s", "sim_time_s", "worker", "node"]


def test_worker_processes_share_one_batched_served_policy(tmp_path: Path, toy_suite: Suite) -> None:
    import vlascore

    suite = small_suite(toy_suite, ["ToyPick"], list(range(6)), max_steps=20)
    runner.run(model="random", suite=suite, out=tmp_path / "inline")
    with served("random", max_clients=3, max_batch_size=3, max_wait_ms=100) as server:
        # every worker process connects with its own `remote` adapter: three clients of one served instance
        pool = make_executor("local", workers=3)
        summary = runner.run(
            model="remote", model_args={"url": server.url}, suite=suite, out=tmp_path / "r", executor=pool
        )
        sizes = server.batch_sizes
    assert (summary.ran, summary.errored) == (6, 0)
    assert max(sizes) > 1 and sum(k * v for k, v in sizes.items()) == 6 * 20
    a, b = (vlascore.load_run(tmp_path / r) for r in ("inline", "r"))
    key = ["episode_id", "step"]
    assert a.steps.sort_values(key).reset_index(drop=True).equals(b.steps.sort_values(key).reset_index(drop=True))
    cols = [c for c in a.episodes.columns if c not in TIMING_AND_PROVENANCE]
    assert (
        a.episodes[cols]
        .sort_values("episode_id")
        .reset_index(drop=True)
        .equals(b.episodes[cols].sort_values("episode_id").reset_index(drop=True))
    )


def test_a_batching_server_still_refuses_clients_past_its_limit(toy_suite: Suite) -> None:
    with served("scripted", max_clients=1, max_batch_size=4) as server:
        first = RemoteAdapter(url=server.url)
        try:
            refused = RemoteAdapter(url=server.url, retries=0)
        except Exception as exc:  # noqa: BLE001 - the message is the point
            assert "each client gets a session on one batched instance" in str(exc)
        else:
            refused.close()
            raise AssertionError("a second client was served past --max-clients 1")
        first.close()
        second = RemoteAdapter(url=server.url, retries=5)  # the first one's session was closed on disconnect
        second.reset(EpisodeContext(task=toy_suite.tasks[0], seed=0, episode_id="ToyPick-0"))
        second.close()


def test_the_serve_command_batches_and_reports_its_batches(tmp_path: Path, toy_suite: Suite) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], [0, 1], max_steps=5)
    with ServeProcess("--model", "random", "--port", "0", "--max-clients", "2", "--max-batch-size", "2") as server:
        runner.run(model="remote", model_args={"url": server.url}, suite=suite, out=tmp_path / "r")
        code, _, errors = server.stop(signal.SIGTERM)
    assert code == 0
    assert "answered 10 act request(s) in 10 batch(es), 1.0 each" in errors  # one client: nothing to batch with
