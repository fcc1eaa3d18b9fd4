"""Local worker processes: results that do not depend on how many workers (or how the policy is shared), task
affinity, provenance and the session record, a worker killed mid-episode, setup failures, and the work plan."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import small_suite
from scalekit import records

import vlascore
from vlascore import runner
from vlascore.scale import make_executor
from vlascore.scale.local import LocalExecutor
from vlascore.scale.plan import WorkPlan
from vlascore.suites import Suite


def two_tasks(toy_suite: Suite, seeds: int = 3, max_steps: int = 40) -> Suite:
    """ToyPick and a second task on the same env, `seeds` seeds each."""
    base = small_suite(toy_suite, ["ToyPick"], list(range(seeds)), max_steps=max_steps)
    other = base.tasks[0].model_copy(update={"id": "ToyPlace", "instruction": "move the red cube to the goal"})
    return base.model_copy(update={"tasks": [base.tasks[0], other]})


@pytest.mark.parametrize("model", ["toy-expert", "random"])
def test_records_do_not_depend_on_the_number_of_workers(tmp_path: Path, toy_suite: Suite, model: str) -> None:
    suite = two_tasks(toy_suite)
    runner.run(model=model, suite=suite, out=tmp_path / "inline")
    expected = records(tmp_path / "inline")
    assert len(expected[0]) == 6 and len(expected[1]) > 0
    for n in (2, 3):
        executor = make_executor("local", workers=n)
        summary = runner.run(model=model, suite=suite, out=tmp_path / f"w{n}", executor=executor)
        assert (summary.ran, summary.errored) == (6, 0)
        assert records(tmp_path / f"w{n}") == expected, f"{n} workers"
        run = vlascore.load_run(tmp_path / f"w{n}")
        workers = {w.split(" ")[0] for w in run.episodes["worker"]}
        assert workers == {f"w{k}" for k in range(n)} and run.episodes["node"].notna().all()
        (session,) = run.run.sessions
        assert (session.executor, session.workers, session.policy, session.episodes) == ("local", n, "per-worker", 6)
        assert session.policy_share is not None and 0 <= session.policy_share <= 1
    inline = vlascore.load_run(tmp_path / "inline")
    assert inline.episodes["worker"].isna().all() and inline.run.sessions[0].executor == "inline"


def test_a_shared_policy_batches_requests_and_changes_no_record(tmp_path: Path, toy_suite: Suite) -> None:
    suite = two_tasks(toy_suite)
    runner.run(model="random", suite=suite, out=tmp_path / "inline")
    executor = make_executor("local", workers=3, policy="shared", max_batch_size=3, max_wait_ms=50)
    runner.run(model="random", suite=suite, out=tmp_path / "shared", executor=executor)
    assert records(tmp_path / "shared") == records(tmp_path / "inline")
    (session,) = vlascore.load_run(tmp_path / "shared").run.sessions
    assert session.policy == "shared" and (session.max_batch_size, session.max_wait_ms) == (3, 50.0)
    assert max(session.batch_sizes) > 1 and sum(k * v for k, v in session.batch_sizes.items()) == session.policy_calls
    assert session.policy_calls == sum(vlascore.load_run(tmp_path / "inline").episodes["num_steps"])
    assert session.policy_share is not None and 0 < session.policy_share < 1


def test_vectorised_workers_with_a_shared_policy(tmp_path: Path, toy_suite: Suite) -> None:
    suite = two_tasks(toy_suite)
    runner.run(model="toy-expert", suite=suite, out=tmp_path / "inline")
    executor = make_executor("local", workers=2, policy="shared", max_batch_size=4, max_wait_ms=20)
    runner.run(model="toy-expert", suite=suite, out=tmp_path / "vec", executor=executor, num_envs=2)
    assert records(tmp_path / "vec") == records(tmp_path / "inline")
    (session,) = vlascore.load_run(tmp_path / "vec").run.sessions
    assert session.num_envs == 2 and max(session.batch_sizes) > 1


def test_a_worker_killed_mid_episode_costs_only_that_episode(tmp_path: Path, toy_suite: Suite) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], list(range(6)), max_steps=40)
    options = {"step_seconds": 0.025}  # a random policy never succeeds: 40 steps, about 1 s per episode
    executor = LocalExecutor(workers=2)
    first = threading.Event()
    killed: dict[str, object] = {}

    def assassin() -> None:
        if not first.wait(60):
            return
        time.sleep(0.3)  # the other worker is well into an episode by now
        flying = executor.in_flight()
        pids = executor.worker_pids()
        slot = next(s for s in flying if s in pids)
        killed.update(slot=slot, pid=pids[slot], episodes=flying[slot])
        os.kill(pids[slot], signal.SIGKILL)

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
    assert killed, "no worker was killed"
    assert (summary.ran, summary.errored) == (6, 1)
    eps = vlascore.load_run(tmp_path / "r").episodes.set_index("episode_id")
    (errored,) = eps.index[eps["status"] == "errored"]
    assert [errored] == killed["episodes"]
    assert eps.loc[errored, "failure_reason"] == (
        f"worker w{killed['slot']} (pid {killed['pid']}) died: killed by SIGKILL (out of memory, or kill -9)"
    )
    assert (eps.drop(index=errored)["status"] == "ok").all()
    (session,) = vlascore.load_run(tmp_path / "r").run.sessions
    assert session.worker_restarts == 1 and session.episodes == 6
    again = runner.run(
        model="random",
        suite=suite,
        out=tmp_path / "r",
        backend_options=options,
        resume=True,
        retry_errored=True,
        executor=LocalExecutor(workers=2),
    )
    assert (again.ran, again.skipped, again.errored) == (1, 5, 0)
    runner.run(model="random", suite=suite, out=tmp_path / "clean")
    assert records(tmp_path / "r") == records(tmp_path / "clean")
    assert len(vlascore.load_run(tmp_path / "r").run.sessions) == 2


def test_an_env_a_worker_cannot_build_stops_the_run_before_anything_is_written(
    tmp_path: Path, toy_suite: Suite
) -> None:
    bad = toy_suite.tasks[0].model_copy(update={"env_id": "Nowhere-v0"})
    suite = toy_suite.model_copy(update={"tasks": [bad]})
    with pytest.raises(ValueError, match="the toy backend only provides ToyPick-v0, not 'Nowhere-v0'"):
        runner.run(model="random", suite=suite, out=tmp_path / "r", episodes=2, executor=LocalExecutor(workers=2))
    assert not (tmp_path / "r" / "run.json").exists()


def test_the_work_plan_keeps_workers_on_the_tasks_they_built() -> None:
    plan = WorkPlan([("A", 0), ("A", 1), ("A", 2), ("B", 0), ("B", 1), ("C", 0)])
    assert plan.take([], Counter()) == [("A", 0)]
    assert plan.take([], Counter({"A": 1})) == [("B", 0)]  # a task nobody is on
    assert plan.take(["A"], Counter({"A": 1, "B": 1})) == [("A", 1)]  # its own task first
    assert plan.take([], Counter({"A": 1, "B": 1})) == [("C", 0)]
    assert plan.take(["C", "B"], Counter({"A": 1, "B": 1})) == [("B", 1)]  # a task it built earlier
    assert plan.take(["C"], Counter({"A": 2})) == [("A", 2)]  # then the task with most left
    assert plan.take(["C"], Counter()) == [] and len(plan) == 0
    vectorised = WorkPlan([("A", s) for s in range(5)], batch=2)
    assert vectorised.chunks() == 3 and vectorised.take([], Counter()) == [("A", 0), ("A", 1)]
