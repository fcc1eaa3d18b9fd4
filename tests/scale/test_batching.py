"""The shared policy's pieces: adapter forks (own episode state, shared model), act_each's failure isolation, and
the Batcher (one batched call for the requests of many sessions, equal to one-by-one calls)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from vlascore.adapters import Adapter, EpisodeContext, PolicyStep, adapt_to_tasks, make_adapter
from vlascore.backends import Observation
from vlascore.scale.batching import Batcher, Session
from vlascore.scale.policy import PolicyHost, PolicyProxy
from vlascore.suites import ActionSpace, Suite


class Model:
    """Stands in for weights: counts forward passes and their batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def forward(self, xs: list[float]) -> list[float]:
        with self.lock:
            self.batches.append(len(xs))
        return [x * 2.0 for x in xs]


class Batched(Adapter):
    """A batching adapter with per-episode state: the action is 2 * (the cube's x + the episode's call count);
    an observation whose cube x is exactly 0.5 makes the forward raise."""

    name = "batched"

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.calls = 0

    def shared_state(self) -> list[Any]:
        return [self.model]

    def reset(self, context: EpisodeContext) -> None:
        self.calls = context.seed * 100

    def _inputs(self, forks: list[Batched], observations: list[Observation]) -> list[float]:
        xs = [float(o.privileged.objects["cube"][0]) + f.calls for f, o in zip(forks, observations, strict=True)]
        if any(float(o.privileged.objects["cube"][0]) == 0.5 for o in observations):
            raise ValueError("bad observation")
        return xs

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return self.act_forks([self], [obs], [instruction])[0]

    def act_forks(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep]:
        mine = [f for f in forks if isinstance(f, Batched)]
        ys = self.model.forward(self._inputs(mine, observations))  # compute first: a failure changes no state
        for f in mine:
            f.calls += 1
        return [PolicyStep(np.array([y, 0, 0, 0, 0, 0, 1.0])) for y in ys]


def observation(x: float) -> Observation:
    from vlascore.backends.base import PrivilegedState

    cube = np.array([x, 0, 0, 1, 0, 0, 0])
    priv = PrivilegedState(ee_pose=np.zeros(7), gripper=1.0, objects={"cube": cube})
    return Observation(image=None, proprio={}, privileged=priv)


def context(toy_suite: Suite, seed: int) -> EpisodeContext:
    return EpisodeContext(task=toy_suite.tasks[0], seed=seed, episode_id=f"ToyPick-{seed}")


def test_a_fork_shares_the_model_and_copies_the_episode_state(toy_suite: Suite) -> None:
    lead = Batched()
    twin = lead.fork()
    assert isinstance(twin, Batched) and twin.model is lead.model and twin is not lead
    lead.reset(context(toy_suite, 1))
    twin.reset(context(toy_suite, 2))
    assert (lead.calls, twin.calls) == (100, 200)
    random = make_adapter("random")
    other = random.fork()
    random.reset(context(toy_suite, 3))
    other.reset(context(toy_suite, 3))
    random.act(observation(0), "")
    # the fork's generator is its own: it draws the first action of seed 3, not the second
    np.testing.assert_array_equal(other.act(observation(0), "").action, make_fresh_random_first_action(toy_suite))


def make_fresh_random_first_action(toy_suite: Suite) -> np.ndarray:
    fresh = make_adapter("random")
    fresh.reset(context(toy_suite, 3))
    return fresh.act(observation(0), "").action


def test_a_converted_adapter_forks_its_inner_adapter(toy_suite: Suite) -> None:
    class Metric(Batched):
        action_space = ActionSpace(mode="ee_delta", rotation="euler_xyz", dim=7, normalized=False, gripper_open=-1)

    wrapped = adapt_to_tasks(Metric(), list(toy_suite.tasks))
    twin = wrapped.fork()
    assert twin is not wrapped and twin.inner.model is wrapped.inner.model and twin.inner is not wrapped.inner
    for a, seed in ((wrapped, 1), (twin, 2)):
        a.reset(context(toy_suite, seed))
    steps = wrapped.act_each([wrapped, twin], [observation(0.1), observation(0.2)], ["", ""])
    assert wrapped.inner.model.batches == [2]  # one batched forward through the wrapper
    alone = [adapt_to_tasks(Metric(), list(toy_suite.tasks)) for _ in range(2)]
    for a, seed in zip(alone, (1, 2), strict=True):
        a.reset(context(toy_suite, seed))
    expected = [alone[0].act(observation(0.1), ""), alone[1].act(observation(0.2), "")]
    for got, want in zip(steps, expected, strict=True):
        assert isinstance(got, PolicyStep)
        np.testing.assert_array_equal(got.action, want.action)  # converted (gripper sign, units) the same way


def test_act_each_keeps_a_failure_to_its_own_fork(toy_suite: Suite) -> None:
    lead = Batched()
    forks = [lead.fork() for _ in range(3)]
    for k, f in enumerate(forks):
        f.reset(context(toy_suite, k))
    out = lead.act_each(forks, [observation(0.1), observation(0.5), observation(0.3)], ["", "", ""])
    assert isinstance(out[1], ValueError) and str(out[1]) == "bad observation"
    assert [o.action[0] for o in (out[0], out[2])] == [pytest.approx(0.2), pytest.approx(400.6)]  # type: ignore[union-attr]
    assert lead.model.batches == [1, 1]  # the batch of 3 failed before its forward; then each fork alone
    assert [f.calls for f in forks] == [1, 100, 201]  # the failing fork's state did not move


def test_the_batcher_answers_many_sessions_with_one_batched_call(toy_suite: Suite) -> None:
    lead = Batched()
    batcher = Batcher(lead, max_batch_size=4, max_wait_ms=2000)
    sessions = [batcher.session() for _ in range(3)]
    for k, s in enumerate(sessions):
        s.reset(context(toy_suite, k))
    results: dict[int, float] = {}

    def ask(k: int) -> None:
        results[k] = float(sessions[k].act(observation(0.1 * (k + 1)), "").action[0])

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # every open session was waiting: the batch went at once, well before the 2 s wait
    assert lead.model.batches == [3] and batcher.stats.batch_sizes == {3: 1} and batcher.stats.calls == 3
    assert results == {0: pytest.approx(0.2), 1: pytest.approx(200.4), 2: pytest.approx(400.6)}
    batcher.close()


def test_a_full_batch_goes_and_the_rest_waits_for_the_next(toy_suite: Suite) -> None:
    lead = Batched()
    batcher = Batcher(lead, max_batch_size=2, max_wait_ms=50)
    sessions = [batcher.session() for _ in range(5)]
    for k, s in enumerate(sessions):
        s.reset(context(toy_suite, k))
    out = sessions[0].act_each(sessions, [observation(0.1)] * 5, [""] * 5)
    assert all(isinstance(o, PolicyStep) for o in out)
    assert sorted(lead.model.batches, reverse=True) == [2, 2, 1] and batcher.stats.calls == 5
    batcher.close()


def test_a_session_is_an_adapter_with_the_forks_declaration(toy_suite: Suite) -> None:
    wrapped = adapt_to_tasks(make_adapter("random"), list(toy_suite.tasks))
    batcher = Batcher(wrapped, max_batch_size=2, max_wait_ms=1)
    session = batcher.session()
    assert isinstance(session, Session) and session.name == "random"
    session.reset(context(toy_suite, 0))
    assert session.action_space == toy_suite.tasks[0].action_space  # random speaks each task's convention
    session.close()
    with pytest.raises(RuntimeError, match="closed session"):
        session.act(observation(0), "")
    batcher.close()


def test_the_host_and_its_proxies_speak_through_a_call_function(toy_suite: Suite) -> None:
    host = PolicyHost(Batched(), max_batch_size=4, max_wait_ms=1)
    proxy = PolicyProxy(host.handle, host.describe())
    twins = [proxy, proxy.fork()]
    for k, p in enumerate(twins):
        p.reset(context(toy_suite, k))
    out = proxy.act_each(twins, [observation(0.1), observation(0.5)], ["", ""])
    assert isinstance(out[0], PolicyStep) and isinstance(out[1], ValueError)
    with pytest.raises(ValueError, match="bad observation"):
        proxy.act(observation(0.5), "")
    assert proxy.info() == {**Batched().info()}
    host.close()
