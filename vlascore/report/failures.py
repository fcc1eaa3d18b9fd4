"""The report's failure breakdown: how episodes ended, why errored ones failed, what the judges flagged, and
which judgements failed. Everything is counted from the stored records; nothing is inferred here."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pandas as pd

from vlascore.judging.failure_modes import Taxonomy
from vlascore.judging.judgement import JudgementFile

TERMINATIONS = ("success", "max_steps", "terminated", "error")
MAX_EXAMPLES = 5
"""Episode ids listed (as drill-down links) per group."""


@dataclass
class Group:
    """Episodes that share a reason."""

    key: str
    label: str
    count: int
    examples: list[str]
    detail: str = ""
    share: float | None = None
    """count / the group's denominator (judged episodes for flags), when it has one."""
    in_failures: int | None = None
    """Flags only: how many of the flagged episodes failed (B = 0)."""


@dataclass
class JudgeFailures:
    label: str
    judged: int
    flags: list[Group] = field(default_factory=list)
    failed: list[Group] = field(default_factory=list)


@dataclass
class RunFailures:
    terminations: list[dict[str, object]]
    """Rows: task, then a count per TERMINATIONS, then `total`."""
    errored: list[Group]
    judges: list[JudgeFailures]


def error_kind(reason: str | None) -> str:
    """What groups failure reasons: the exception type (`RuntimeError: boom` -> `RuntimeError`), else the text
    with numbers blanked (`step 3` and `step 7` group together), cut to 80 characters."""
    text = (reason or "unknown").strip().splitlines()[0] if reason else "unknown"
    head = text.split(":", 1)[0]
    if re.fullmatch(r"[A-Za-z_][\w.]*(Error|Exception|Warning|Interrupt|Exit)", head):
        return head
    return re.sub(r"\d+", "N", text)[:80]


def _groups(ids: list[str], reasons: list[str | None]) -> list[Group]:
    by_kind: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for eid, reason in zip(ids, reasons, strict=True):
        by_kind[error_kind(reason)].append((eid, reason))
    groups = [
        Group(key=k, label=k, count=len(v), examples=[e for e, _ in v[:MAX_EXAMPLES]], detail=str(v[0][1] or ""))
        for k, v in by_kind.items()
    ]
    return sorted(groups, key=lambda g: (-g.count, g.key))


def terminations(episodes: pd.DataFrame, tasks: list[str]) -> list[dict[str, object]]:
    rows = []
    for task in [*tasks, None]:
        sub = episodes if task is None else episodes[episodes["task"] == task]
        counts = Counter(sub["termination"])
        rows.append({"task": task or "all", **{t: counts.get(t, 0) for t in TERMINATIONS}, "total": len(sub)})
    return rows


def judge_failures(jf: JudgementFile, success: dict[str, bool], taxonomy: Taxonomy) -> JudgeFailures:
    """Flag counts over the valid verdicts of completed episodes (`success`: episode id -> B)."""
    ok = [j for j in jf.judgements if j.status == "ok" and j.episode_id in success]
    out = JudgeFailures(label=jf.label, judged=len(ok))
    flagged: dict[str, list[str]] = defaultdict(list)
    for j in ok:
        for mode in j.failure_modes:
            flagged[mode].append(j.episode_id)
    order = {m: i for i, m in enumerate(taxonomy.modes)}
    for mode in sorted(flagged, key=lambda m: (-len(flagged[m]), order.get(m, len(order)), m)):
        ids = flagged[mode]
        described = taxonomy.modes.get(mode)
        out.flags.append(
            Group(
                key=mode,
                label=taxonomy.label(mode),
                count=len(ids),
                examples=ids[:MAX_EXAMPLES],
                detail=described.description if described else "",
                share=len(ids) / len(ok),
                in_failures=sum(not success[e] for e in ids),
            )
        )
    failed = [j for j in jf.judgements if j.status == "failed" and j.episode_id in success]
    out.failed = _groups([j.episode_id for j in failed], [j.failure_reason for j in failed])
    return out


def run_failures(
    episodes: pd.DataFrame, tasks: list[str], judgements: list[JudgementFile], taxonomy: Taxonomy
) -> RunFailures:
    errored = episodes[episodes["status"] == "errored"]
    ok = episodes[episodes["status"] == "ok"]
    success = dict(zip(ok["episode_id"], ok["success"].astype(bool), strict=True))
    reasons = [r if isinstance(r, str) else None for r in errored["failure_reason"]]  # SQL NULL may read as NaN
    return RunFailures(
        terminations=terminations(episodes, tasks),
        errored=_groups(list(errored["episode_id"]), reasons),
        judges=[judge_failures(jf, success, taxonomy) for jf in judgements],
    )
