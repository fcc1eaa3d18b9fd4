"""Ray actors (`vlascore run --executor ray`): the executor for more than one machine.

Each worker is an actor asking for one CPU, spread over the cluster's nodes; a shared policy is one more actor,
asking for `--policy-gpus` GPUs, that the workers call. Jobs go to the actors and episodes (records, steps and
frames) come back through Ray's object store, so no shared file system is assumed: the run directory lives on the
driver, the only writer. An actor that dies (its process killed, its node lost) fails the episodes it was playing,
with Ray's reason, and a new actor takes its place.

Every node needs the same vlascore (and the extras the run uses) installed: Ray runs the actors with the Python of
the node's `ray start`. `ray` is an optional extra; nothing here is imported without `--executor ray`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from vlascore.extras import require
from vlascore.runner import Job, WorkerSetup
from vlascore.scale.batching import BatchStats
from vlascore.scale.executor import Declared, Event, Executor, WorkerFailed
from vlascore.scale.policy import PolicyHost, PolicyProxy, portable
from vlascore.scale.worker import EpisodeWorker

START_TIMEOUT_S = 300.0
"""How long workers may take to be placed and started before the run gives up (a cluster without free CPUs)."""
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def ray_module() -> Any:
    return require("ray", "ray", "--executor ray")


def gcs_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) of a `HOST:PORT` or `ray://HOST:PORT` address; None for `auto`."""
    if address == "auto":
        return None
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if not parts.hostname or parts.port is None:
        raise ValueError(
            f"--ray-address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, the head's `ray start` port)"
        )
    return parts.hostname, parts.port


def unreachable(address: str, timeout: float = 3.0) -> str | None:
    """Why nothing answers at a Ray address (a TCP connection to it fails), or None when something does."""
    endpoint = gcs_endpoint(address)
    if endpoint is None:
        return None
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            return None
    except OSError as exc:
        return f"{exc.strerror or exc}"


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray replaces a loopback address (the driver's, a cluster's) with the machine's interface address unless multi-node
clusters are disabled, which this variable does on any OS (its name is historical); only then does a Ray that
runs on this machine alone stay on 127.0.0.1."""


def loopback_only() -> None:
    """Keep Ray on 127.0.0.1: for a local instance, and for a cluster whose head listens on loopback (tests)."""
    os.environ[LOOPBACK_ENV] = "0"  # read by Ray when it is imported, here and in the processes it starts
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010 - Ray was imported before the variable was set


def connect(address: str | None) -> bool:
    """Join the cluster at `address`, or start a local Ray instance on 127.0.0.1 (None); False when this process
    was connected already (then it is not ours to shut down). The dashboard and usage reporting stay off."""
    ray = ray_module()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        loopback_only()
        options |= {"_node_ip_address": "127.0.0.1", "include_dashboard": False}
    else:
        why = unreachable(address)
        if why is not None:
            raise ConnectionError(
                f"cannot reach a Ray cluster at {address} ({why}): start one with `ray start --head "
                "--port=6379` on the head node, or check --ray-address (`vlascore doctor --ray-address ADDRESS`)"
            )
        options["address"] = address
        endpoint = gcs_endpoint(address)
        if endpoint is not None and endpoint[0] in LOOPBACK:
            loopback_only()
            options["_node_ip_address"] = "127.0.0.1"
    ray.init(**options)
    return True


def _node_name() -> str:
    node_id = ray_module().get_runtime_context().get_node_id()
    return f"{socket.gethostname()} ray:{node_id[:12]}"


class WorkerActor:
    """An EpisodeWorker in a Ray actor. Methods answer ("ok", ...) or ("fatal", exception): a setup failure is the
    run's error, not an actor crash."""

    def __init__(self, setup: WorkerSetup, name: str, policy: Any, described: dict[str, Any] | None) -> None:
        self.error: Exception | None = None
        try:
            ray = ray_module()
            proxy = None
            if policy is not None and described is not None:
                proxy = PolicyProxy(lambda request: ray.get(policy.handle.remote(request)), described)
            self.worker = EpisodeWorker(setup, f"{name} (pid {os.getpid()})", _node_name(), proxy)
        except Exception as exc:  # noqa: BLE001 - reported by ready()
            self.error = portable(exc)

    def ready(self) -> tuple[str, Any]:
        return ("fatal", self.error) if self.error is not None else ("ok", (self.worker.node, os.getpid()))

    def make(self, task_id: str) -> tuple[str, Any]:
        try:
            self.worker.make(task_id)
            return ("ok", task_id)
        except Exception as exc:  # noqa: BLE001
            return ("fatal", portable(exc))

    def play(self, jobs: list[Job]) -> tuple[str, Any]:
        try:
            return ("ok", (list(self.worker.play(jobs)), dict(self.worker.batches)))
        except Exception as exc:  # noqa: BLE001
            return ("fatal", portable(exc))


class PolicyActor:
    """The shared policy's PolicyHost in a Ray actor (threaded: concurrent calls are what the batcher gathers)."""

    def __init__(self, setup: WorkerSetup, max_batch_size: int, max_wait_ms: float) -> None:
        self.error: Exception | None = None
        self.host: PolicyHost | None = None
        try:
            self.host = PolicyHost(setup.make_adapter(), max_batch_size, max_wait_ms)
        except Exception as exc:  # noqa: BLE001 - reported by describe()
            self.error = portable(exc)

    def describe(self) -> tuple[str, Any]:
        if self.host is None:
            return ("fatal", self.error)
        return ("ok", {**self.host.describe(), "node": _node_name()})

    def handle(self, request: tuple[Any, ...]) -> tuple[str, Any]:
        assert self.host is not None
        return self.host.handle(request)

    def stats(self) -> BatchStats:
        assert self.host is not None
        return self.host.stats()

    def close(self) -> None:
        if self.host is not None:
            self.host.close()


def _ok(reply: tuple[str, Any]) -> Any:
    status, value = reply
    if status == "fatal":
        raise value
    return value


class RayExecutor(Executor):
    """Workers as Ray actors on a cluster (or a local Ray instance); see the module docstring."""

    kind = "ray"

    def __init__(self, *args: Any, ray_address: str | None = None, policy_gpus: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if policy_gpus < 0:
            raise ValueError(f"--policy-gpus must be >= 0, got {policy_gpus}")
        self.ray_address, self.policy_gpus = ray_address, float(policy_gpus)
        self._owns_ray = False
        self._actors: dict[int, Any] = {}
        self._nodes: dict[int, str] = {}
        self._pids: dict[int, int] = {}
        self._pending: dict[Any, tuple[int, str]] = {}
        self._policy: Any = None
        self._described: dict[str, Any] | None = None
        self._stats: BatchStats | None = None
        self._deadline = 0.0

    def prepare(self, setup: WorkerSetup) -> Declared:
        ray = ray_module()
        self.setup = setup
        self._owns_ray = connect(self.ray_address)
        if self.policy == "shared":
            concurrency = max(32, 4 * self.workers * setup.num_envs)
            actor = ray.remote(PolicyActor).options(
                num_cpus=0, num_gpus=self.policy_gpus, max_concurrency=concurrency, max_restarts=0
            )
            self._policy = actor.remote(setup, self.max_batch_size, self.max_wait_ms)
            try:
                self._described = _ok(ray.get(self._policy.describe.remote(), timeout=START_TIMEOUT_S))
            except ray.exceptions.GetTimeoutError:
                raise WorkerFailed(
                    f"Ray could not start the shared policy within {START_TIMEOUT_S:.0f} s: no node has "
                    f"{self.policy_gpus:g} free GPU(s) for it (--policy-gpus), or loading the model takes longer; "
                    "see `ray status`"
                ) from None
            assert self._described is not None
            return Declared(self._described["config"], self._described["info"])
        adapter = setup.make_adapter()
        try:  # built here for the checks and the run record; each worker builds its own
            return Declared(dict(adapter.config), adapter.info())
        finally:
            adapter.close()

    def _spawn(self, slot: int) -> None:
        ray = ray_module()
        self._deadline = time.monotonic() + START_TIMEOUT_S  # for this worker (and any other still starting)
        actor = (
            ray.remote(WorkerActor)
            .options(num_cpus=1, scheduling_strategy="SPREAD", max_restarts=0, name=None)
            .remote(self.setup, f"w{slot}", self._policy, self._described)
        )
        self._actors[slot] = actor
        self._nodes.pop(slot, None)
        self._pids.pop(slot, None)
        self._pending[actor.ready.remote()] = (slot, "ready")

    def _send(self, slot: int, jobs: list[Job]) -> None:
        actor = self._actors[slot]
        self._pending[actor.make.remote(jobs[0][0])] = (slot, "made")
        self._pending[actor.play.remote(jobs)] = (slot, "play")

    def _wait(self, timeout: float) -> list[Event]:
        ray = ray_module()
        if not self._pending:
            return []
        if any(not s.ready for s in self._slots.values()) and time.monotonic() > self._deadline:
            waiting = [f"w{k}" for k, s in self._slots.items() if not s.ready]
            raise WorkerFailed(
                f"Ray could not start worker(s) {', '.join(waiting)} within {START_TIMEOUT_S:.0f} s: the cluster has "
                "no free CPU for them (each asks for one), or a node cannot import vlascore; see `ray status`"
            )
        done, _ = ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if done:
            more, _ = ray.wait(
                [r for r in self._pending if r not in done], num_returns=len(self._pending) - 1, timeout=0
            )
            done += more
        events: list[Event] = []
        dead: set[int] = set()
        for ref in done:
            slot, kind = self._pending.pop(ref)
            if slot in dead:
                continue
            try:
                reply = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                dead.add(slot)
                for other in [r for r, (s, _) in self._pending.items() if s == slot]:
                    del self._pending[other]
                lines = [line for line in str(exc).splitlines() if line.strip()]
                events.append(Event("died", slot, lines[0] if lines else type(exc).__name__))
                continue
            status, value = reply
            if status == "fatal":
                events.append(Event("fatal", slot, value))
            elif kind == "ready":
                self._nodes[slot], self._pids[slot] = value
                events.append(Event("ready", slot, value[0]))
            elif kind == "made":
                events.append(Event("made", slot, value))
            else:
                outcomes, batches = value
                events += [Event("episode", slot, outcome) for outcome in outcomes]
                events.append(Event("idle", slot, batches))
        return events

    def worker_pids(self) -> dict[int, int]:
        """Worker slot -> process id of its actor (on whichever node it runs)."""
        return dict(self._pids)

    def _describe(self, slot: int) -> str:
        node = self._nodes.get(slot)
        return f"worker w{slot} (Ray actor" + (f" on {node})" if node else ")")

    def _stop(self) -> None:
        ray = ray_module()
        if not ray.is_initialized():
            return
        if self._policy is not None:
            try:
                self._stats = ray.get(self._policy.stats.remote(), timeout=10)
                ray.get(self._policy.close.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - it may have died; it is killed below either way
                pass
        for actor in [*self._actors.values(), *([self._policy] if self._policy is not None else [])]:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors.clear()
        self._pending.clear()
        if self._owns_ray:
            ray.shutdown()

    def _policy_stats(self) -> BatchStats | None:
        return self._stats

    def _session_extra(self) -> dict[str, Any]:
        return {"ray_address": self.ray_address}
