"""--executor ray against a real two-node Ray cluster on this machine (Ray's own multi-node test utility, every node
and the driver on 127.0.0.1, no dashboard, no usage reporting): episodes run on both nodes, come back through Ray,
and their records equal a local run's; a shared policy runs as its own actor; doctor probes the cluster."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import small_suite
from scalekit import records
from typer.testing import CliRunner

import vlascore
from vlascore import runner
from vlascore.cli import app
from vlascore.scale import make_executor
from vlascore.scale.ray_actors import LOOPBACK_ENV, loopback_only
from vlascore.suites import Suite

ray = pytest.importorskip("ray", reason="the ray extra is not installed (scripts/setup.sh installs it)")
cluster_utils = pytest.importorskip("ray.cluster_utils")

NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and a second node, one CPU each: two workers (one CPU each) must land on different nodes."""
    saved = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED", LOOPBACK_ENV)}
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    loopback_only()  # every node, and the driver, on 127.0.0.1
    made = cluster_utils.Cluster(initialize_head=True, head_node_args=NODE)
    try:
        made.add_node(**NODE)
        made.wait_for_nodes(60)
        yield made
    finally:
        if ray.is_initialized():
            ray.shutdown()
        made.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def two_tasks(toy_suite: Suite) -> Suite:
    base = small_suite(toy_suite, ["ToyPick"], [0, 1, 2])
    other = base.tasks[0].model_copy(update={"id": "ToyPlace"})
    return base.model_copy(update={"tasks": [base.tasks[0], other]})


def test_episodes_run_on_both_nodes_and_equal_a_local_run(cluster: Any, tmp_path: Path, toy_suite: Suite) -> None:
    suite = two_tasks(toy_suite)
    runner.run(model="random", suite=suite, out=tmp_path / "local", executor=make_executor("local", workers=2))
    executor = make_executor("ray", workers=2, ray_address=cluster.address)
    summary = runner.run(model="random", suite=suite, out=tmp_path / "ray", executor=executor)
    assert (summary.ran, summary.errored) == (6, 0)
    assert records(tmp_path / "ray") == records(tmp_path / "local")
    run = vlascore.load_run(tmp_path / "ray")
    nodes = set(run.episodes["node"])
    assert len(nodes) == 2 and all(" ray:" in n for n in nodes)  # both nodes ran episodes
    (session,) = run.run.sessions
    assert (session.executor, session.ray_address, session.workers) == ("ray", cluster.address, 2)
    assert not ray.is_initialized()  # the driver left the cluster; the cluster itself goes on


def test_a_shared_policy_actor_serves_the_workers(cluster: Any, tmp_path: Path, toy_suite: Suite) -> None:
    suite = two_tasks(toy_suite)
    runner.run(model="random", suite=suite, out=tmp_path / "inline")
    executor = make_executor(
        "ray", workers=2, policy="shared", max_batch_size=2, max_wait_ms=50, ray_address=cluster.address
    )
    runner.run(model="random", suite=suite, out=tmp_path / "ray", executor=executor)
    assert records(tmp_path / "ray") == records(tmp_path / "inline")
    (session,) = vlascore.load_run(tmp_path / "ray").run.sessions
    assert session.policy == "shared" and session.batch_sizes.get(2, 0) > 0 and session.policy_calls > 0


def test_a_dead_ray_worker_costs_only_its_episode(cluster: Any, tmp_path: Path, toy_suite: Suite) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], [0, 1, 2, 3], max_steps=40)
    options = {"step_seconds": 0.025}
    executor = make_executor("ray", workers=2, ray_address=cluster.address)
    first = threading.Event()
    killed: dict[str, Any] = {}

    def assassin() -> None:
        if first.wait(120):
            time.sleep(0.3)
            flying = executor.in_flight()
            slot = next(iter(flying))
            killed.update(slot=slot, episodes=flying[slot])
            os.kill(executor.worker_pids()[slot], signal.SIGKILL)  # type: ignore[attr-defined]

    thread = threading.Thread(target=assassin, daemon=True)
    thread.start()
    summary = runner.run(
        model="random",
        suite=suite,
        out=tmp_path / "r",
        backend_options=options,
        executor=executor,
        on_episode=lambda ep: first.set(),
    )
    thread.join(10)
    assert killed and (summary.ran, summary.errored) == (4, 1)
    eps = vlascore.load_run(tmp_path / "r").episodes.set_index("episode_id")
    (errored,) = eps.index[eps["status"] == "errored"]
    assert [errored] == killed["episodes"]
    assert eps.loc[errored, "failure_reason"].startswith(f"worker w{killed['slot']} (Ray actor on ")


def test_doctor_probes_the_cluster(cluster: Any) -> None:
    result = CliRunner().invoke(app, ["doctor", "-s", "toy", "--ray-address", cluster.address])
    assert f"ray cluster: {cluster.address} is reachable: 2 node(s), 2 CPU(s), 0 GPU(s)" in result.stdout
    assert "  ok  ray: ray " in result.stdout
