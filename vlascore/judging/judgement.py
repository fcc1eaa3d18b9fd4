"""Typed judgement records: what `vlascore judge` writes to <run>/judgements/<label>.json.

One file per judge configuration (label), rewritten atomically when a judge pass finishes; an interrupted
VLM pass resumes from the content-addressed cache, so finished calls are never paid for twice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vlascore.records import utcnow

# 2: added Judgement.failure_modes (version 1 files are read as having none).
JUDGEMENT_SCHEMA_VERSION = 2
JUDGEMENTS_DIR = "judgements"

# The JSON keys of the paper's judge contract (docs/vla_score.md §3) and the short names used in tables.
DIMENSIONS: dict[str, str] = {"Reasoning": "R", "Action": "A", "Intention": "I", "Alignment": "RA"}
SPECIALIST_DIMENSIONS = ("Action", "Intention")
REASONING_DIMENSIONS = ("Reasoning", "Action", "Intention", "Alignment")
Mode = Literal["reasoning", "specialist"]


def dimensions_for(mode: Mode) -> tuple[str, ...]:
    """Specialist (non-reasoning) policies are judged on Action and Intention only (docs/vla_score.md §2)."""
    return REASONING_DIMENSIONS if mode == "reasoning" else SPECIALIST_DIMENSIONS


class Usage(BaseModel):
    """Token and call accounting."""

    model_config = ConfigDict(extra="forbid")
    calls: int = 0
    """Chat requests that reached the endpoint and returned (asks and re-asks; client retries not counted)."""
    cache_hits: int = 0
    """Judgements served from the cache (no call made)."""
    prompt_tokens: int = 0
    """Prompt tokens reported by the endpoint."""
    completion_tokens: int = 0
    """Completion tokens reported by the endpoint."""
    cost_usd: float | None = 0.0
    """Estimated cost from the price table; None when the model's price is unknown."""

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.cache_hits += other.cache_hits
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd


class Judgement(BaseModel):
    """One judge's verdict on one episode."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = JUDGEMENT_SCHEMA_VERSION
    """Version of this record's format."""
    episode_id: str
    """Episode judged."""
    judge: str
    """Judge definition name (judges/<name>.yaml)."""
    judge_version: str
    """Effective judge version: the declared version + a hash of its templates and settings."""
    judge_model: str | None = None
    """Model behind a VLM judge (None for the grounded judge)."""
    mode: Mode
    """`reasoning`: R, A, I, RA asked; `specialist`: A and I only (from the adapter's declaration)."""
    status: Literal["ok", "failed"]
    """`failed`: no valid verdict after all attempts; excluded from means and counted, never scored 0."""
    scores: dict[str, int] = {}
    """Dimension (Reasoning, Action, Intention, Alignment) -> integer 0-10; empty when failed."""
    success_claim: bool | None = None
    """The judge's own optional `Success` field: informational only, B comes from the simulator."""
    thought: str = ""
    """The judge's rationale (the paper's `Thought`)."""
    failure_modes: list[str] = []
    """Failure modes the judge flagged (ids of its taxonomy, judges/failure_modes/taxonomy.yaml): measured by the
    grounded judge, keyword-tagged in a VLM judge's rationale."""
    failure_reason: str | None = None
    """Why the judgement failed (last error)."""
    raw_replies: list[str] = []
    """Every reply text received for this judgement, in order (kept so failures can be inspected)."""
    attempts: int = 0
    """Chat requests made for this judgement (first ask + re-asks); 0 when cached or not a VLM judge."""
    request_hash: str = ""
    """Content hash of the rendered request (the cache key with judge version and model)."""
    input_key: str = ""
    """Digest of what the request was rendered from (judge version, model, mode, knowledge base, the episode's
    recorded content): lets a re-judge find `request_hash` without reading frames or rendering."""
    cached: bool = False
    """Whether the verdict came from the cache."""
    examples: list[str] = []
    """Knowledge-base entry ids used as few-shot examples (retrieval)."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens and cost of this judgement's calls."""
    latency_s: float = 0.0
    """Wall time spent producing the verdict."""
    created_at: str = Field(default_factory=utcnow)
    """UTC time of the verdict."""


class JudgementFile(BaseModel):
    """All judgements of one judge configuration on one run."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = JUDGEMENT_SCHEMA_VERSION
    """Version of this file's format."""
    label: str
    """File stem: the judge name, plus the model for VLM judges."""
    run_id: str
    """Run judged."""
    judge: str
    """Judge definition name."""
    judge_version: str
    """Effective judge version."""
    judge_model: str | None = None
    """Model behind a VLM judge."""
    base_url: str | None = None
    """Endpoint used (None: the client's default)."""
    settings: dict[str, object] = {}
    """The judge definition's settings as used (frames, serialisation, retrieval)."""
    created_at: str = Field(default_factory=utcnow)
    """UTC time the pass finished."""
    duration_s: float = 0.0
    """Wall time of the pass."""
    usage: Usage = Field(default_factory=Usage)
    """Totals over the pass."""
    judgements: list[Judgement] = []
    """One per judged episode, in run order."""
