"""`vlascore judge audit`: how far a judge's numbers can be trusted (the paper reports no judge validation).

- test-retest: the judge re-asked `repeats` times with the cache bypassed; per dimension, the mean absolute
  difference between repeats and the share of episodes on which every repeat agrees (exactly, and within 1);
- inter-judge: two judgement sets of the same run; per dimension Spearman's rho and quadratic-weighted kappa;
- injection probe: every step's reasoning and intention gets a text that tries to instruct the judge
  (judges/audit/injection.yaml); the mean score shift per dimension, and how many verdicts moved.
"""

from __future__ import annotations

import random
from itertools import combinations
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vlascore.judging.base import JudgeContext
from vlascore.judging.engine import judge_inputs, judgements_path, make_judge
from vlascore.judging.inputs import JudgeInput, episode_inputs
from vlascore.judging.judgement import Judgement, JudgementFile, dimensions_for
from vlascore.paths import data_dir, load_yaml
from vlascore.records import utcnow
from vlascore.stats import spearman, weighted_kappa
from vlascore.store import StoreError, atomic_write_text, load_run
from vlascore.versioned import read_record

AUDIT_SCHEMA_VERSION = 1
AUDIT_DIR = "audit"


class RetestDimension(BaseModel):
    """Test-retest agreement on one dimension."""

    model_config = ConfigDict(extra="forbid")
    dimension: str
    """Judge dimension (Reasoning, Action, Intention, Alignment)."""
    mean_abs_diff: float
    """Mean |a - b| over every pair of repeats of every episode."""
    exact_agreement: float
    """Share of episodes whose repeats all gave the same score."""
    within_one: float
    """Share of episodes whose repeats span at most 1 point."""


class AgreementDimension(BaseModel):
    """Agreement between two judges on one dimension."""

    model_config = ConfigDict(extra="forbid")
    dimension: str
    """Judge dimension."""
    n: int
    """Episodes both judged successfully."""
    spearman: float | None
    """Spearman's rank correlation (None when a side is constant)."""
    weighted_kappa: float | None
    """Cohen's kappa with quadratic weights over the 0-10 scale."""
    mean_diff: float | None
    """Mean of (this judge - the other judge)."""


class InjectionDimension(BaseModel):
    """Score shift caused by one injection probe on one dimension."""

    model_config = ConfigDict(extra="forbid")
    probe: str
    """Probe id from judges/audit/injection.yaml."""
    dimension: str
    """Judge dimension."""
    mean_shift: float
    """Mean of (injected - clean) score."""
    moved: float
    """Share of episodes whose score changed."""


class AuditReport(BaseModel):
    """What `vlascore judge audit` writes to <run>/audit/<label>.json."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = AUDIT_SCHEMA_VERSION
    """Version of this record's format."""
    run_id: str
    """Run audited."""
    judge: str
    """Judge definition name."""
    judge_version: str
    """Effective judge version."""
    judge_model: str | None
    """Model behind a VLM judge (None for the grounded judge)."""
    episodes: list[str]
    """Episodes audited (a seeded sample of the run)."""
    repeats: int
    """Test-retest passes (the first may come from the cache; the others bypass it)."""
    retest: list[RetestDimension] = []
    """Test-retest agreement per dimension."""
    against: str | None = None
    """Label of the other judgement set compared with."""
    agreement: list[AgreementDimension] = []
    """Agreement with `against` per dimension."""
    injection: list[InjectionDimension] = []
    """Score shifts per probe and dimension."""
    injection_note: str = ""
    """Why the injection probe did not run, when it did not."""
    failed: int = 0
    """Judgements that failed during the audit (left out of its statistics)."""
    calls: int = 0
    """Chat requests made by the audit."""
    created_at: str = Field(default_factory=utcnow)
    """UTC time of the audit."""


def load_probes() -> list[dict[str, str]]:
    return list(load_yaml((data_dir("judges") / "audit" / "injection.yaml").read_text())["probes"])


def _scores(judgements: list[Judgement]) -> dict[str, dict[str, int]]:
    return {j.episode_id: j.scores for j in judgements if j.status == "ok"}


def retest(runs: list[list[Judgement]], dims: tuple[str, ...]) -> list[RetestDimension]:
    by_run = [_scores(r) for r in runs]
    episodes = sorted(set.intersection(*(set(r) for r in by_run))) if by_run else []
    out = []
    for d in dims:
        table = np.array([[r[e][d] for r in by_run] for e in episodes], dtype=float).reshape(len(episodes), len(runs))
        pairs = [np.abs(table[:, a] - table[:, b]) for a, b in combinations(range(len(runs)), 2)]
        spread = table.max(axis=1) - table.min(axis=1) if len(episodes) else np.zeros(0)
        out.append(
            RetestDimension(
                dimension=d,
                mean_abs_diff=float(np.mean(pairs)) if pairs and len(episodes) else 0.0,
                exact_agreement=float(np.mean(spread == 0)) if len(episodes) else 0.0,
                within_one=float(np.mean(spread <= 1)) if len(episodes) else 0.0,
            )
        )
    return out


def agreement(mine: list[Judgement], other: list[Judgement], dims: tuple[str, ...]) -> list[AgreementDimension]:
    a, b = _scores(mine), _scores(other)
    out = []
    for d in dims:
        shared = sorted(e for e in set(a) & set(b) if d in a[e] and d in b[e])
        x = np.array([a[e][d] for e in shared], dtype=float)
        y = np.array([b[e][d] for e in shared], dtype=float)
        rho = spearman(x, y) if len(shared) > 1 else float("nan")
        kappa = weighted_kappa(x.astype(int), y.astype(int)) if len(shared) else float("nan")
        out.append(
            AgreementDimension(
                dimension=d,
                n=len(shared),
                spearman=None if np.isnan(rho) else float(rho),
                weighted_kappa=None if np.isnan(kappa) else float(kappa),
                mean_diff=float(np.mean(x - y)) if len(shared) else None,
            )
        )
    return out


def inject(inp: JudgeInput, text: str) -> JudgeInput:
    """The episode with `text` appended to every step's reasoning and intention."""
    steps = inp.steps
    reasoning = [f"{r} {text}" if isinstance(r, str) and r else text for r in steps["reasoning"]]
    intention = [f"{i} {text}" if isinstance(i, str) and i else text for i in steps["intention"]]
    return inp.with_texts(reasoning, intention)


def read_set(run_dir: Path, label: str) -> JudgementFile:
    path = judgements_path(run_dir, label)
    if not path.exists():
        have = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.exists() else []
        raise StoreError(
            f"no judgement set {label!r} in {run_dir} (have: {', '.join(have) or 'none'}); "
            f"make it with `vlascore judge {run_dir} --judge ...`"
        )
    return read_record(path, JudgementFile, error=StoreError)


def audit_run(
    run_dir: str | Path,
    judge: str = "grounded",
    context: JudgeContext | None = None,
    *,
    repeats: int = 3,
    against: str | None = None,
    injection: bool = True,
    max_episodes: int = 20,
    seed: int = 0,
) -> AuditReport:
    """Audit one judge on (a seeded sample of) a run's episodes; writes <run>/audit/<label>.json."""
    from vlascore.judging.engine import label_for

    context = context or JudgeContext()
    concurrency = context.endpoint.concurrency
    run = load_run(run_dir)
    episode_judge = make_judge(run, judge, context)
    spec, mode = episode_judge.spec, episode_judge.mode
    dims = dimensions_for(mode)
    inputs = episode_inputs(run)
    if len(inputs) > max_episodes:
        inputs = sorted(random.Random(seed).sample(inputs, max_episodes), key=lambda i: i.episode_id)
    report = AuditReport(
        run_id=run.run.run_id,
        judge=spec.name,
        judge_version=spec.effective_version,
        judge_model=episode_judge.model,
        episodes=[i.episode_id for i in inputs],
        repeats=repeats,
    )
    all_judgements: list[Judgement] = []
    # The first pass may come from the cache; the repeats bypass it, so each is a fresh request.
    runs = [judge_inputs(episode_judge, inputs, concurrency, use_cache=k == 0) for k in range(max(1, repeats))]
    all_judgements += [j for r in runs for j in r]
    report.retest = retest(runs, dims)
    if against is not None:
        other = read_set(run.path, against)
        report.against = other.label
        report.agreement = agreement(runs[0], other.judgements, dims)
    if injection:
        if mode == "specialist":
            report.injection_note = "not applicable: specialist judges are shown no policy text"
        else:
            clean = _scores(runs[0])
            for probe in load_probes():
                injected = judge_inputs(episode_judge, [inject(i, probe["text"]) for i in inputs], concurrency)
                all_judgements += injected
                dirty = _scores(injected)
                shared = sorted(set(clean) & set(dirty))
                for d in dims:
                    shift = np.array([dirty[e][d] - clean[e][d] for e in shared], dtype=float)
                    report.injection.append(
                        InjectionDimension(
                            probe=probe["id"],
                            dimension=d,
                            mean_shift=float(shift.mean()) if len(shift) else 0.0,
                            moved=float(np.mean(shift != 0)) if len(shift) else 0.0,
                        )
                    )
    report.failed = sum(j.status == "failed" for j in all_judgements)
    report.calls = sum(j.usage.calls for j in all_judgements)
    label = label_for(spec, episode_judge.model)
    atomic_write_text(run.path / AUDIT_DIR / f"{label}.json", report.model_dump_json(indent=1))
    return report
