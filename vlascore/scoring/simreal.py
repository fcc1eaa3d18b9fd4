"""Sim-to-real agreement, as SimplerEnv measures it (Li et al., CoRL 2024, arXiv:2405.05941): over a set of
policies, does a simulated evaluation rank them like the real robot does? Two numbers per task:

- **MMRV** (mean maximum rank violation, lower is better, 0..1): for each policy, the largest real-success gap
  among the policy pairs the simulator orders differently from the real robot; then the mean over policies.
- **Pearson r** (higher is better) between the simulated and the real success rates.

The real rates and SimplerEnv's own simulated rates of its reference policies are data:
tasks/simpler/real_success.yaml (docs/simreal.md says where each number comes from).

**[decision]** `mmrv` and `pearson` compute exactly what SimplerEnv's simpler_env/utils/metrics.py computes,
including its `+ 1e-8` in Pearson's denominator (kept so results equal SimplerEnv's to ~1e-12; it shrinks r by
a relative 1e-8 / denominator, 3e-6 for the smallest-variance Bridge task) and its special cases (see `pearson`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vlascore.paths import data_dir, load_yaml
from vlascore.registry import did_you_mean
from vlascore.versioned import parse_record

REAL_SUCCESS_FILE = "simpler/real_success.yaml"
"""Relative to the tasks/ data folder."""
SIMREAL_SCHEMA_VERSION = 1
"""Of the JSON `vlascore simreal --json` writes (SimRealResult)."""
REAL_SUCCESS_SCHEMA_VERSION = 1
"""Of real-success data files (the bundled tasks/simpler/real_success.yaml, or yours through --real)."""

Protocol = Literal["vm", "va", "ms3"]
"""SimplerEnv's two simulated protocols, Visual Matching and Variant Aggregation, and `ms3`: the ManiSkill 3
digital twins of its Bridge scenes (suite simpler-bridge), a re-implementation compared with the same real rates."""
PROTOCOL_TITLES: dict[str, str] = {
    "vm": "Visual Matching",
    "va": "Variant Aggregation",
    "ms3": "ManiSkill 3 Bridge twins",
}
Rate = Annotated[float, Field(ge=0.0, le=1.0)]

_GOOGLE_COLUMNS = (
    "pick_coke_can",
    "pick_coke_can_horizontal",
    "pick_coke_can_vertical",
    "pick_coke_can_standing",
    "move_near",
    "open_drawer",
    "close_drawer",
    "drawer",
    "put_apple_in_drawer",
)
_BRIDGE_COLUMNS = ("put_spoon_on_towel", "put_carrot_on_plate", "stack_block", "put_eggplant_in_basket")
COLUMN_PREFIXES: dict[str, tuple[str, ...]] = {
    "vm": ("google_vm/", "bridge/"),
    "va": ("google_va/",),
    "ms3": ("bridge_ms3/",),
}
"""Which column-key prefixes belong to each protocol (Bridge is Visual Matching only)."""
COLUMN_KEYS: frozenset[str] = frozenset(
    [f"google_{p}/{c}" for p in ("vm", "va") for c in _GOOGLE_COLUMNS]
    + [f"{p}/{c}" for p in ("bridge", "bridge_ms3") for c in _BRIDGE_COLUMNS]
)
"""The result-column keys (RunResults.columns[].key) the SimplerEnv suites produce; the data file maps tasks
onto these."""

NEITHER = "neither a sim nor a real rate"
"""The exclusion reason of a policy that is simply not evaluated on a task (e.g. RT-2-X on Bridge)."""
SimRates = dict[str, dict[str, float]]
"""{policy: {task id or column key: success rate in 0..1}}."""


class SimRealError(ValueError):
    """Input that cannot be compared (too few policies, unknown names, bad rate files); the message says why."""


# ---------------------------------------------------------------------------------------------- the metrics


def mmrv(sim: list[float] | np.ndarray, real: list[float] | np.ndarray) -> float:
    """Mean maximum rank violation of `sim` against `real` (one rate per policy, same order); SimplerEnv's
    `mean_maximum_rank_violation(perf_sim, perf_real)`.

    A pair (i, j) is violated when `sim[i] > sim[j]` and `real[i] > real[j]` disagree; its weight is
    |real[i] - real[j]|. Policy i's MRV is its worst violated pair (0 if none); MMRV is the mean MRV.

    **Not symmetric**: weights come from the second argument, and a sim tie counts against the policy that is
    better in real (`sim[i] > sim[j]` is False, `real[i] > real[j]` is True), so pass (sim, real) in that order.
    (SimplerEnv's README snippet passes real first; its own scripts, and the paper's figures, use (sim, real).)
    """
    s, r = _pair(sim, real)
    violated = (s[:, None] > s[None, :]) != (r[:, None] > r[None, :])
    worst = np.where(violated, np.abs(r[:, None] - r[None, :]), 0.0).max(axis=1)  # i == j never violates: >= 0
    return float(np.mean(worst))


def pearson(sim: list[float] | np.ndarray, real: list[float] | np.ndarray) -> float:
    """Pearson correlation of `sim` and `real`; SimplerEnv's `pearson_correlation(perf_sim, perf_real)`
    (symmetric).

    sum(x*y) / (sqrt(sum(x^2) * sum(y^2)) + 1e-8) on the centred vectors x, y, kept exactly as SimplerEnv has
    it: the epsilon pulls r slightly towards 0; when the centred vectors are equal element-wise (e.g. both all
    zero) the result is 1; a constant vector against a varying one gives 0.
    """
    s, r = _pair(sim, real)
    x, y = s - s.mean(), r - r.mean()
    if np.all(x == y):
        return 1.0
    return float(np.sum(x * y) / (np.sqrt(np.sum(x**2) * np.sum(y**2)) + 1e-8))


def _pair(sim: list[float] | np.ndarray, real: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, r = np.asarray(sim, dtype=np.float64), np.asarray(real, dtype=np.float64)
    if s.shape != r.shape or s.ndim != 1:
        raise ValueError(f"sim and real must be 1-D and of the same length (got shapes {s.shape} and {r.shape})")
    return s, r


# ---------------------------------------------------------------------------------------------- the data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(_Strict):
    title: str
    authors: list[str]
    venue: str
    year: int
    arxiv: str
    key: str
    """BibTeX key."""
    code: str

    def line(self) -> str:
        return f'{self.authors[0]} et al., "{self.title}", {self.venue}, arXiv:{self.arxiv}'

    def bibtex(self) -> str:
        return (
            f"@inproceedings{{{self.key},\n  title={{{self.title}}},\n  author={{{' and '.join(self.authors)}}},"
            f"\n  booktitle={{{self.venue}}},\n  year={{{self.year}}},\n  eprint={{{self.arxiv}}},"
            "\n  archivePrefix={arXiv}\n}"
        )


class Source(_Strict):
    repo: str
    commit: str
    files: list[str]
    note: str = ""


class ReferencePolicy(_Strict):
    title: str
    checkpoint: str
    """SimplerEnv's checkpoint directory name (CKPT_MAPPING)."""


class SourcedRates(_Strict):
    source: str
    """`<key of sources>: file, dict and key`."""
    rates: dict[str, Rate] = {}
    mean_of: list[str] = []
    """Real rates only: the per-policy mean of these tasks' real rates (the policies that have all of them)."""

    @model_validator(mode="after")
    def _one_way(self) -> SourcedRates:
        if bool(self.rates) == bool(self.mean_of):
            raise ValueError("give either rates or mean_of")
        return self


class PaperValue(_Strict):
    mmrv: float
    pearson: float
    source: str


class RealTask(_Strict):
    """A real-robot task: its rates per reference policy and the sim column it is compared with."""

    id: str
    title: str
    robot: Literal["google_robot", "widowx"]
    metric: Literal["success", "grasp"] = "success"
    """grasp: Bridge's "partial success" (the source object was grasped), a metric of its own."""
    trials: int = Field(gt=0)
    """Real trials per policy (as SimplerEnv's metric script counts them)."""
    columns: dict[Protocol, str]
    """The vlascore result column compared with it, per protocol."""
    real: SourcedRates
    simpler: dict[Protocol, SourcedRates] = {}
    """SimplerEnv's own simulated rates, per protocol (`--reference`)."""
    paper: PaperValue | None = None
    """MMRV and r the paper prints for this task (Visual Matching), where it prints one."""

    def reference(self, protocol: Protocol) -> dict[str, float]:
        """SimplerEnv's simulated rates under `protocol` ({} where it has none)."""
        return dict(self.simpler[protocol].rates) if protocol in self.simpler else {}

    @model_validator(mode="after")
    def _check(self) -> RealTask:
        for protocol, key in self.columns.items():
            if key not in COLUMN_KEYS or not key.startswith(COLUMN_PREFIXES[protocol]):
                raise ValueError(f"task {self.id!r}: {key!r} is not a known {protocol} column key")
        if any(sim.mean_of for sim in self.simpler.values()):
            raise ValueError(f"task {self.id!r}: simulated rates are given, never derived")
        return self


class Summary(_Strict):
    """A figure value that averages several tasks' MMRV and r (the paper's Bridge panel)."""

    id: str
    title: str
    protocols: list[Protocol]
    mean_of: list[str] = Field(min_length=2)
    paper: PaperValue | None = None


class RealSuccessData(_Strict):
    """tasks/simpler/real_success.yaml."""

    schema_version: int = REAL_SUCCESS_SCHEMA_VERSION
    citation: Citation
    sources: dict[str, Source]
    policies: dict[str, ReferencePolicy]
    tasks: list[RealTask]
    summaries: list[Summary] = []

    @model_validator(mode="after")
    def _check(self) -> RealSuccessData:
        ids = [t.id for t in self.tasks]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate task ids")
        columns = [c for t in self.tasks for c in t.columns.values()]
        if len(set(columns)) != len(columns):
            raise ValueError("a column key is mapped to two tasks")
        for t in self.tasks:
            for what, rates in [("real", t.real), *((f"simpler.{p}", s) for p, s in t.simpler.items())]:
                unknown = [p for p in rates.rates if p not in self.policies]
                if unknown:
                    raise ValueError(f"task {t.id!r} {what}: unknown policies {', '.join(unknown)}")
                if rates.source.partition(":")[0] not in self.sources:
                    raise ValueError(f"task {t.id!r} {what}: source {rates.source!r} must start with a sources key")
            bad = [m for m in t.real.mean_of if m not in ids or m == t.id]
            if bad:
                raise ValueError(f"task {t.id!r}: real.mean_of names unknown tasks {', '.join(bad)}")
        for s in self.summaries:
            bad = [m for m in s.mean_of if m not in ids]
            if bad:
                raise ValueError(f"summary {s.id!r} names unknown tasks {', '.join(bad)}")
        return self

    def task(self, task_id: str) -> RealTask:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise SimRealError(
            f"unknown task {task_id!r}.{did_you_mean(task_id, self.task_ids)} Tasks: {', '.join(self.task_ids)}"
        )

    @property
    def task_ids(self) -> list[str]:
        return [t.id for t in self.tasks]

    def task_of_key(self, key: str) -> RealTask | None:
        """The task a task id or a column key (of either protocol) names."""
        for t in self.tasks:
            if key == t.id or key in t.columns.values():
                return t
        return None

    def real_rates(self, extra: SimRates | None = None) -> dict[str, dict[str, float]]:
        """{task: {policy: real rate}}: the bundled rates, then `extra` ({policy: {task: rate}}, replacing bundled
        ones), then the derived (`mean_of`) tasks for the policies that have all their parts."""
        out: dict[str, dict[str, float]] = {t.id: dict(t.real.rates) for t in self.tasks}
        for policy, rates in (extra or {}).items():
            for task_id, rate in rates.items():
                if task_id not in out:
                    raise SimRealError(f"real rates of {policy}: unknown task {task_id!r}")
                out[task_id][policy] = rate
        for t in self.tasks:
            if t.real.mean_of:
                parts = [out[m] for m in t.real.mean_of]
                for policy in dict.fromkeys(p for part in parts for p in part):
                    if policy not in out[t.id] and all(policy in part for part in parts):
                        out[t.id][policy] = float(np.mean([part[policy] for part in parts]))
        return out

    def reference_sims(self, protocol: Protocol) -> SimRates:
        """SimplerEnv's simulated rates under `protocol`: {policy: {task: rate}}."""
        out: SimRates = {}
        for t in self.tasks:
            if protocol in t.simpler:
                for policy, rate in t.simpler[protocol].rates.items():
                    out.setdefault(policy, {})[t.id] = rate
        return out


@lru_cache(maxsize=1)
def load_real_success() -> RealSuccessData:
    """The bundled tasks/simpler/real_success.yaml, validated."""
    return read_real_success(data_dir("tasks") / REAL_SUCCESS_FILE)


def read_real_success(path: Path) -> RealSuccessData:
    raw = _read_mapping(path, "real-success data")
    return parse_record(raw, RealSuccessData, f"real-success data {path}", error=SimRealError)


# ---------------------------------------------------------------------------------------------- rate files


def sim_rates_from_run(run_dir: str | Path) -> dict[str, float]:
    """{column key: success rate} of a vlascore run (columns without a rate left out)."""
    from vlascore.scoring.success import score_run
    from vlascore.store import load_run

    results = score_run(load_run(run_dir))
    return {c.key: c.success_rate for c in results.columns if c.success_rate is not None}


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text()
        raw = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SimRealError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise SimRealError(f"{what} {path} must be a mapping")
    return raw


def _rate(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise SimRealError(f"{where}: {value!r} is not a success rate in 0..1 (give fractions, not percent)")
    return float(value)


def read_sim_rates(path: Path) -> dict[str, float]:
    """A YAML/JSON file of {column key: sim success rate}; every key must be a known column key."""
    out: dict[str, float] = {}
    for key, value in _read_mapping(path, "sim-rate file").items():
        if key not in COLUMN_KEYS:
            raise SimRealError(
                f"{path}: unknown column key {key!r}.{did_you_mean(str(key), COLUMN_KEYS)} "
                f"Known: {', '.join(sorted(COLUMN_KEYS))}"
            )
        if value is not None:
            out[key] = _rate(value, f"{path}: {key}")
    return out


def read_real_rates(path: Path, data: RealSuccessData | None = None) -> SimRates:
    """A YAML/JSON file of {policy: {task id or column key: real success rate}} -> {policy: {task id: rate}}."""
    data = data or load_real_success()
    out: SimRates = {}
    for policy, rates in _read_mapping(path, "real-rate file").items():
        if not isinstance(rates, dict):
            raise SimRealError(f"{path}: {policy!r} must map task ids (or column keys) to real success rates")
        for key, value in rates.items():
            task = data.task_of_key(str(key))
            if task is None:
                raise SimRealError(
                    f"{path}: {policy}: unknown task {key!r}.{did_you_mean(str(key), data.task_ids)} "
                    f"Tasks: {', '.join(data.task_ids)}"
                )
            if value is not None:
                out.setdefault(str(policy), {})[task.id] = _rate(value, f"{path}: {policy}: {key}")
    return out


def sims_by_task(data: RealSuccessData, protocol: Protocol, columns: dict[str, float]) -> dict[str, float]:
    """{column key: rate} -> {task id: rate} for the tasks whose `protocol` column is given."""
    return {t.id: columns[t.columns[protocol]] for t in data.tasks if t.columns.get(protocol) in columns}


# ---------------------------------------------------------------------------------------------- comparing


class MetricPair(_Strict):
    mmrv: float
    pearson: float


class PolicyRates(_Strict):
    policy: str
    sim: float
    real: float


class TaskComparison(_Strict):
    task: str
    title: str
    metric: str
    column: str | None
    """The sim column compared (None: SimplerEnv's reference numbers only, e.g. Bridge grasps)."""
    real_trials: int
    rates: list[PolicyRates]
    mmrv: float
    pearson: float
    paper: PaperValue | None = None
    """The paper's value for this task: given when the policies compared are the paper's (Visual Matching)."""
    simpler: MetricPair | None = None
    """The metrics of SimplerEnv's own simulated rates for the same policies (when it has them all): the baseline
    a new simulation setup is measured against."""
    excluded: dict[str, str] = {}
    """Policies left out of this task, and why."""
    warnings: list[str] = []


class SkippedTask(_Strict):
    task: str
    reason: str
    excluded: dict[str, str] = {}


class SummaryComparison(_Strict):
    id: str
    title: str
    tasks: list[str]
    mmrv: float
    """Mean of the tasks' MMRV."""
    pearson: float
    """Mean of the tasks' r."""
    paper: PaperValue | None = None


class SimRealResult(_Strict):
    """What `vlascore simreal --json` writes."""

    schema_version: int = SIMREAL_SCHEMA_VERSION
    protocol: Protocol
    sim_sources: dict[str, str]
    """Where each policy's simulated rates came from."""
    real_sources: dict[str, str]
    """Where each compared policy's real rates came from."""
    tasks: list[TaskComparison]
    summaries: list[SummaryComparison] = []
    skipped: list[SkippedTask] = []
    skipped_summaries: dict[str, str] = {}
    citation: str


def compare(
    sims: SimRates,
    protocol: Protocol,
    *,
    data: RealSuccessData | None = None,
    real_extra: SimRates | None = None,
    sim_sources: dict[str, str] | None = None,
    real_extra_source: str = "--real file",
    tasks: list[str] | None = None,
) -> SimRealResult:
    """MMRV and Pearson r per task over the policies that have both a sim and a real rate.

    `sims`: {policy: {task id: sim rate}} (`sims_by_task` maps a run's column keys; `reference_sims` gives
    SimplerEnv's). `real_extra`: {policy: {task id: real rate}} for policies (or tasks) the bundled data lacks.
    Raises SimRealError with fewer than 2 policies, for a policy without any real rate, or when no task has 2.
    """
    data = data or load_real_success()
    if len(sims) < 2:
        raise SimRealError(
            f"MMRV and Pearson compare a ranking of policies: give sim rates for at least 2 "
            f"(got {len(sims)}: {', '.join(sims) or 'none'})"
        )
    real = data.real_rates(real_extra)
    extra = real_extra or {}
    with_real = {p for rates in real.values() for p in rates}
    unknown = [p for p in sims if p not in with_real]
    if unknown:
        hints = "".join(did_you_mean(p, data.policies) for p in unknown)
        raise SimRealError(
            f"no real-robot rates for policy {', '.join(unknown)}.{hints} Bundled policies: "
            f"{', '.join(data.policies)}; give others' real rates with --real FILE"
        )
    chosen = [data.task(t) for t in tasks] if tasks else list(data.tasks)
    done: list[TaskComparison] = []
    skipped: list[SkippedTask] = []
    for task in chosen:
        outcome = _compare_task(task, protocol, sims, real[task.id])
        if isinstance(outcome, TaskComparison):
            done.append(outcome)
        else:
            skipped.append(outcome)
    if not done:
        reasons = "; ".join(f"{s.task}: {s.reason}" for s in skipped)
        raise SimRealError(
            f"no task has sim and real rates for 2 or more of {', '.join(sims)} under "
            f"{PROTOCOL_TITLES[protocol]} ({reasons})"
        )
    by_id = {c.task: c for c in done}
    summaries, skipped_summaries = [], {}
    for summary in data.summaries:
        if protocol not in summary.protocols or (tasks and not set(summary.mean_of) <= set(tasks)):
            continue
        missing = [m for m in summary.mean_of if m not in by_id]
        if missing:
            skipped_summaries[summary.id] = f"needs all of its tasks; not compared: {', '.join(missing)}"
            continue
        parts = [by_id[m] for m in summary.mean_of]
        as_paper = all({r.policy for r in p.rates} == set(data.task(p.task).reference("vm")) for p in parts)
        summaries.append(
            SummaryComparison(
                id=summary.id,
                title=summary.title,
                tasks=summary.mean_of,
                mmrv=float(np.mean([p.mmrv for p in parts])),
                pearson=float(np.mean([p.pearson for p in parts])),
                paper=summary.paper if as_paper else None,
            )
        )
    compared = {row.policy for c in done for row in c.rates}
    real_sources = {p: _real_source(data, p, extra, real_extra_source) for p in sims if p in compared}
    return SimRealResult(
        protocol=protocol,
        sim_sources={p: (sim_sources or {}).get(p, "given") for p in sims},
        real_sources=real_sources,
        tasks=done,
        summaries=summaries,
        skipped=skipped,
        skipped_summaries=skipped_summaries,
        citation=data.citation.line(),
    )


def _compare_task(
    task: RealTask, protocol: Protocol, sims: SimRates, real: dict[str, float]
) -> TaskComparison | SkippedTask:
    column = task.columns.get(protocol)
    rows, excluded = [], {}
    for policy, rates in sims.items():
        s, r = rates.get(task.id), real.get(policy)
        if s is None and r is None:
            excluded[policy] = NEITHER
        elif s is None:
            excluded[policy] = f"no sim rate (column {column})" if column else "no sim rate"
        elif r is None:
            excluded[policy] = "no real rate"
        else:
            rows.append(PolicyRates(policy=policy, sim=s, real=r))
    if len(rows) < 2:
        if column is None and protocol not in task.simpler:
            reason = f"not part of {PROTOCOL_TITLES[protocol]}"
        elif column is None:
            reason = f"{task.metric} rate: no vlascore column records it; compared with --reference only"
        else:
            reason = f"{len(rows)} policy(ies) with both sim and real rates; MMRV and r need 2"
        return SkippedTask(task=task.id, reason=reason, excluded=excluded)
    s_vec, r_vec = [row.sim for row in rows], [row.real for row in rows]
    policies = {row.policy for row in rows}
    ref = task.reference(protocol)
    baseline = None
    if policies <= set(ref):
        ref_vec = [ref[row.policy] for row in rows]
        baseline = MetricPair(mmrv=mmrv(ref_vec, r_vec), pearson=pearson(ref_vec, r_vec))
    warnings = [
        f"{what} rates are equal for every policy: Pearson r is undefined (SimplerEnv's formula gives "
        f"{pearson(s_vec, r_vec):.3g})"
        for what, v in (("sim", s_vec), ("real", r_vec))
        if len(set(v)) == 1
    ]
    return TaskComparison(
        task=task.id,
        title=task.title,
        metric=task.metric,
        column=column,
        real_trials=task.trials,
        rates=rows,
        mmrv=mmrv(s_vec, r_vec),
        pearson=pearson(s_vec, r_vec),
        # the paper's value describes its policy set: given only for that same set
        paper=task.paper if protocol == "vm" and policies == set(task.reference("vm")) else None,
        simpler=baseline,
        excluded=excluded,
        warnings=warnings,
    )


def _real_source(data: RealSuccessData, policy: str, extra: SimRates, extra_source: str) -> str:
    up = data.sources["upstream"]
    bundled = f"bundled ({up.repo} @ {up.commit[:7]}, tasks/{REAL_SUCCESS_FILE})"
    if policy not in extra:
        return bundled
    return f"{bundled}; {extra_source} for {', '.join(extra[policy])}" if policy in data.policies else extra_source
