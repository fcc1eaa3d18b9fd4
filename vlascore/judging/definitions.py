"""Judge definitions: YAML data in judges/ (settings + Jinja prompt templates), validated into frozen specs.

A judge's effective version is its declared `version` plus a hash of its settings and template texts, so
editing a template or a frame setting changes the version stored with every judgement.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vlascore.judging.failure_modes import FailureModeError, Taxonomy, load_taxonomy
from vlascore.judging.judgement import Mode


class JudgeError(ValueError):
    """A judge definition that cannot be read, or a judge that does not fit the run."""


class FrameSettings(BaseModel):
    """**[decision]** how the trajectory is shown to a VLM judge (docs/vla_score.md §1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    count: int = Field(default=8, ge=2)
    """Frames sampled uniformly over the episode, always including the first and the last."""
    resolution: tuple[int, int] = (256, 256)
    """(width, height) each frame is resized to (nearest neighbour)."""
    layout: Literal["separate", "grid"] = "separate"
    """`separate`: one image part per frame, in time order; `grid`: one image, row-major, time order."""
    grid_columns: int = Field(default=4, ge=1)
    """Columns of the grid layout."""


class TraceSettings(BaseModel):
    """**[decision]** how the policy's per-step reasoning is serialised (docs/vla_score.md §1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    collapse_repeats: bool = True
    """Consecutive identical texts are sent once, with their step range."""
    include_intention: bool = True
    """Send the stated intention next to the reasoning."""
    max_chars: int = Field(default=6000, gt=0)
    """Longer traces keep their head and tail, with the cut marked."""
    include_actions: bool = False
    """Also send the numeric actions at the sampled frames."""


class RetrievalSettings(BaseModel):
    """**[decision]** retrieval-augmented few-shot (docs/vla_score.md §5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    """Fill the prompt's Example slot from the knowledge base."""
    top_k: int = Field(default=1, ge=1)
    """Examples retrieved per judgement."""
    text_embedder: str = "hashing"
    """Embedder for instructions (task retrieval): `hashing` (offline), `openai`, `clip`."""
    image_embedder: str = "histogram"
    """Embedder for frames (scene retrieval, mean-pooled): `histogram` (offline), `clip`."""


class RequestSettings(BaseModel):
    """Chat request settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    temperature: float = 0.0
    """Sampling temperature (0: as deterministic as the endpoint allows)."""
    max_tokens: int = 1024
    """Completion token limit."""
    max_reasks: int = Field(default=2, ge=0)
    """Re-asks after a malformed reply before the judgement is recorded as failed."""


class JudgeSpec(BaseModel):
    """One judge: the VLM judge of the paper (per policy kind) or the offline grounded judge."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    """Judge name (`--judge`)."""
    kind: str
    """A registered judge kind (vlascore/judging/base.py): `vlm`, an OpenAI-compatible chat model; `grounded`,
    formulas over privileged simulator state; or one a package adds through the `vlascore.judges` entry points."""
    version: str
    """Declared version; bump it by hand on meaningful changes (the effective version also hashes content)."""
    description: str = ""
    """One paragraph for `vlascore judge list`."""
    citation: str = ""
    """Where the rubric comes from."""
    mode: Literal["reasoning", "specialist", "auto"] = "auto"
    """Which policies it judges; `auto` takes the adapter's declaration."""
    templates: dict[str, str] = {}
    """Template role (system, user) -> path relative to the judges/ folder."""
    frames: FrameSettings = FrameSettings()
    trace: TraceSettings = TraceSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    request: RequestSettings = RequestSettings()
    params: dict[str, Any] = {}
    """Kind-specific parameters (the grounded judge's thresholds and weights)."""
    failure_modes: str | None = None
    """Failure-mode taxonomy, relative to the judge file's folder [default: judges/failure_modes/taxonomy.yaml]."""
    source: str = Field(default="", exclude=True)
    """File the spec was read from (not part of the version)."""
    root: str = Field(default="", exclude=True)
    """Folder template paths are relative to."""

    @cached_property
    def template_texts(self) -> dict[str, str]:
        out = {}
        for role, rel in self.templates.items():
            path = Path(self.root) / rel
            try:
                out[role] = path.read_text()
            except OSError as exc:
                raise JudgeError(f"judge {self.name!r}: cannot read its {role} template {path}: {exc}") from exc
        return out

    @cached_property
    def taxonomy(self) -> Taxonomy:
        """The failure modes this judge may flag (and, for a VLM judge, tags its rationale with)."""
        try:
            return load_taxonomy(Path(self.root) / self.failure_modes if self.failure_modes else None)
        except FailureModeError as exc:
            raise JudgeError(f"judge {self.name!r}: {exc}") from exc

    @cached_property
    def effective_version(self) -> str:
        blob = json.dumps(
            {
                "spec": self.model_dump(mode="json"),
                "templates": self.template_texts,
                "failure_modes": self.taxonomy.digest,
            },
            sort_keys=True,
        )
        return f"{self.version}+{hashlib.sha256(blob.encode()).hexdigest()[:8]}"

    def mode_for(self, reasons: bool) -> Mode:
        """The mode this judge uses on a policy that does (or does not) declare reasoning."""
        wanted: Mode = "reasoning" if reasons else "specialist"
        if self.mode not in ("auto", wanted):
            raise JudgeError(
                f"judge {self.name!r} is for {self.mode} policies, but this run's policy is a {wanted} one; "
                f"use --judge vla-score, which picks the {wanted} judge from the run"
            )
        return wanted
