"""Retrieval-augmented few-shot (docs/vla_score.md §5): the knowledge base (KB) of reviewed reference trajectories.

A KB is a folder (the shipped one is `judges/kb/`):

    reviewed.jsonl        one KBEntry per line: the hand-written, reviewed rationale and scores (source of truth)
    frames/<id>.npz       a few frames of each entry (`frames` uint8 k x H x W x 3, `steps` their step indices)
    index.json            how the index was built: embedder names/versions/dims, entry ids, input digests,
                          the sha256 of index.npz
    index.npz             `text` (N x Dt instruction embeddings), `image` (N x Di pooled scene embeddings), `ids`

`kb_add` appends an entry from a recorded run; `kb_build` (re)builds the index; `KnowledgeBase.load` reads
both and refuses an index that is stale (entries added or their instruction/frames changed since the
build) or that was built with another embedder or version than the judge asks for. Editing a rationale or
scores needs no rebuild: they are read from reviewed.jsonl at load time.

Retrieval for one trajectory: task retrieval (cosine between the instruction's text embedding and every
entry's instruction; the category of the best-matching entry wins), then scene retrieval inside that
category (cosine between mean-pooled frame embeddings), top-k.

**[decision]** Cosine similarity on L2-normalised embeddings, rounded to 6 decimals before ranking so
ties (identical instructions, repeated scenes) break the same way on every machine: by entry id.
**[decision]** Task retrieval is nearest-neighbour (max over a category's entries, not the mean), so one
close reference is enough to pick a family.
**[decision]** Entries that score every dimension the judge must output (all four for a reasoning policy,
Action and Intention for a specialist) are preferred: task retrieval only looks at them when the KB has
any, and scene retrieval ranks them first (and among them, entries of the same mode: a specialist is
best shown a specialist's example), then fills up to k with the category's other entries.
**[decision]** Each entry keeps 6 frames sampled uniformly (first and last included) and shrunk to at
most 64 px (box average) to keep the shipped KB small; query frames get the same sampling and shrinking
before embedding, so both sides of the cosine see the same kind of image.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from vlascore.images import sample_indices, thumbnail
from vlascore.judging.definitions import RetrievalSettings
from vlascore.judging.embedders import EmbedderError, embed_scene, image_embedder, text_embedder
from vlascore.judging.judgement import DIMENSIONS, Mode, dimensions_for
from vlascore.records import utcnow
from vlascore.store import atomic_write, atomic_write_text, read_npz
from vlascore.versioned import load_json, parse_record, read_record

KB_SCHEMA_VERSION = 1
INDEX_SCHEMA_VERSION = 1
REVIEWED_FILE = "reviewed.jsonl"
INDEX_JSON = "index.json"
INDEX_NPZ = "index.npz"
FRAMES_DIR = "frames"
FRAMES_PER_ENTRY = 6
"""**[decision]** frames kept per entry and sampled from a query episode for scene retrieval."""
FRAME_MAX_SIDE = 64
"""**[decision]** longer side (pixels) of stored and query frames before embedding."""
_CONNECTION_OPTIONS = ("base_url", "api_key_env", "timeout_s", "batch_size")
"""Embedder options that say how to reach an embedder, not what it computes: restored from the index at query time."""
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class KBError(ValueError):
    """A knowledge base, entry or index that cannot be used; the message says how to fix it."""


def default_kb_dir() -> Path:
    """The KB shipped in judges/kb/ (the wheel's copy when installed)."""
    from vlascore.paths import data_dir

    return data_dir("judges") / "kb"


EpisodeKey = tuple[str, str, str]
"""(suite fingerprint, adapter, episode id): the same episode of the same policy on the same protocol."""


class KBSource(BaseModel):
    """Where an entry's trajectory was recorded (the run itself need not be shipped: frames are copied)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    run_id: str
    """Run the episode comes from."""
    adapter: str
    """Policy adapter that produced it."""
    episode_id: str
    """Episode id inside that run (`<task>-<seed>`)."""
    suite_fingerprint: str
    """Fingerprint of the suite the run used."""

    @property
    def key(self) -> EpisodeKey:
        return (self.suite_fingerprint, self.adapter, self.episode_id)


class KBEntry(BaseModel):
    """One reviewed reference trajectory: what the judge is shown as a worked example."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = KB_SCHEMA_VERSION
    """Version of this record's format."""
    id: str
    """Unique entry id (letters, digits, `.`, `_`, `-`); also the frames file name."""
    task: str
    """Task id of the source episode (e.g. `PickCube`)."""
    category: str
    """Task family used for task retrieval (Pick, Push, Stack, Put, Open, Move, Pull...)."""
    instruction: str
    """Instruction the policy was given."""
    mode: Mode
    """`reasoning` (scored on R, A, I, RA) or `specialist` (A and I), from the policy's declaration."""
    success: bool
    """The simulator's success flag B for the episode (never the reviewer's opinion)."""
    scores: dict[str, StrictInt]
    """Dimension (Reasoning, Action, Intention, Alignment) -> reviewed integer score 0-10."""
    rationale: str
    """The hand-written, reviewed evaluation (the paper's `Thought`): what happened and why the scores."""
    source: KBSource
    """Run and episode the trajectory was recorded in."""
    frames_file: str
    """Path, relative to the KB folder, of the entry's few frames (.npz with `frames` and `steps`)."""
    num_steps: int = Field(default=0, ge=0)
    """Control steps the episode ran."""
    reviewed_by: str
    """Who wrote and checked the rationale and scores."""
    added_at: str = Field(default_factory=utcnow)
    """UTC time the entry was added."""

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"entry id {v!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit")
        return v

    @field_validator("scores")
    @classmethod
    def _scores_ok(cls, v: dict[str, int]) -> dict[str, int]:
        for key, score in v.items():
            if key not in DIMENSIONS:
                raise ValueError(f"unknown dimension {key!r}; dimensions: {', '.join(DIMENSIONS)}")
            if not 0 <= score <= 10:
                raise ValueError(f"{key} must be an integer 0-10, got {score!r}")
        return {k: v[k] for k in DIMENSIONS if k in v}  # canonical order

    @field_validator("rationale", "reviewed_by", "instruction", "category")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    def covers(self, mode: Mode) -> bool:
        """Whether this entry scores every dimension a judge of `mode` must output."""
        return all(d in self.scores for d in dimensions_for(mode))


class KBIndex(BaseModel):
    """index.json: how the KB's embeddings (index.npz) were made, and of which entries."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = INDEX_SCHEMA_VERSION
    """Version of this record's format."""
    built_at: str
    """UTC time of the build."""
    text_embedder: dict[str, Any]
    """Spec, name, version, dimension and options (endpoint, key variable) of the instruction embedder."""
    image_embedder: dict[str, Any]
    """Spec, name, version and dimension of the frame embedder."""
    frames_per_entry: int
    """Frames embedded per entry."""
    frame_max_side: int
    """Longest side frames were shrunk to before embedding."""
    ids: list[str]
    """Entry ids, in the order of index.npz's rows."""
    input_digests: dict[str, str]
    """Entry id -> digest of what was embedded (instruction, category, frames): a change means a rebuild."""
    npz_sha256: str
    """sha256 of index.npz."""


# -- reading and writing reviewed.jsonl -------------------------------------------------------------------
def read_entries(path: str | Path) -> list[KBEntry]:
    """Entries of a reviewed JSONL (a KB folder or the file itself), validated, ids unique."""
    path = Path(path)
    if path.is_dir():
        path = path / REVIEWED_FILE
    if not path.is_file():
        raise KBError(f"no knowledge base at {path}: add entries with `vlascore kb add` or pass a reviewed JSONL")
    entries, seen = [], set()
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        what = f"{path}:{lineno}"
        entry = parse_record(load_json(line, what, error=KBError), KBEntry, what, error=KBError)
        if entry.id in seen:
            raise KBError(f"{path}:{lineno}: duplicate entry id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def _write_entries(kb_dir: Path, entries: list[KBEntry]) -> None:
    atomic_write_text(kb_dir / REVIEWED_FILE, "".join(e.model_dump_json() + "\n" for e in entries))


def read_entry_frames(kb_dir: str | Path, entry: KBEntry) -> tuple[np.ndarray, np.ndarray]:
    """(frames k x H x W x 3 uint8, their step indices in the source episode)."""
    path = Path(kb_dir) / entry.frames_file
    try:
        frames, steps = read_npz(path, "frames", "steps")
        return frames, steps
    except (OSError, KeyError, ValueError) as exc:
        raise KBError(f"entry {entry.id!r}: cannot read its frames {path}: {exc}") from None


def query_frames(frames: np.ndarray) -> np.ndarray:
    """The frames scene retrieval embeds: FRAMES_PER_ENTRY sampled uniformly, shrunk to FRAME_MAX_SIDE."""
    frames = np.asarray(frames)
    idx = sample_indices(len(frames), FRAMES_PER_ENTRY)
    return np.stack([thumbnail(frames[i], FRAME_MAX_SIDE) for i in idx]) if idx else frames[:0]


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Atomic .npz write."""
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))  # type: ignore[arg-type]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _input_digest(kb_dir: Path, entry: KBEntry) -> str:
    """What an entry's embeddings depend on: its instruction, category and frames file."""
    h = hashlib.sha256(f"{entry.instruction}\0{entry.category}\0".encode())
    frames = kb_dir / entry.frames_file
    h.update(frames.read_bytes() if frames.is_file() else b"missing")
    return h.hexdigest()[:16]


# -- add ----------------------------------------------------------------------------------------------------
def parse_scores(text: str) -> dict[str, int]:
    """`"Action=8,Intention=9"` (or short keys `A=8,I=9,R=7,RA=8`, any case) -> {"Action": 8, "Intention": 9}."""
    names = {k.lower(): k for k in DIMENSIONS} | {v.lower(): k for k, v in DIMENSIONS.items()}
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        raw, sep, value = part.partition("=")
        key = names.get(raw.strip().lower())
        if not sep or key is None:
            raise KBError(f"scores: expected DIMENSION=INT with DIMENSION in {', '.join(DIMENSIONS)}, got {part!r}")
        if key in out:
            raise KBError(f"scores: {key} given twice")
        try:
            out[key] = int(value.strip())
        except ValueError:
            raise KBError(f"scores: {key} must be an integer 0-10, got {value.strip()!r}") from None
    return out


def kb_add(
    kb_dir: str | Path,
    run_dir: str | Path,
    episode_id: str,
    rationale: str,
    scores: dict[str, int],
    reviewed_by: str,
    *,
    entry_id: str | None = None,
    category: str | None = None,
) -> KBEntry:
    """Append a reviewed episode of a recorded run to the KB and copy its sampled frames.

    Refuses: an errored or unknown episode, a duplicate id or source episode, scores outside 0-10, and a
    dimension set other than the one the policy's mode is judged on. Run `kb_build` afterwards.
    """
    from vlascore.store import StoreError, load_run
    from vlascore.suites import Suite

    kb_dir = Path(kb_dir)
    try:
        run = load_run(run_dir)
    except StoreError as exc:
        raise KBError(str(exc)) from None
    episodes = run.store.episode_records()
    ep = next((e for e in episodes if e.episode_id == episode_id), None)
    if ep is None:
        known = ", ".join(e.episode_id for e in episodes[:10])
        raise KBError(f"no episode {episode_id!r} in run {run.path}; episodes include: {known}")
    if ep.status != "ok":
        raise KBError(
            f"episode {episode_id!r} errored ({ep.failure_reason}); only completed episodes can be references"
        )
    bad = {k: v for k, v in scores.items() if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10}
    if bad:
        raise KBError(f"scores must be integers 0-10, got {', '.join(f'{k}={v!r}' for k, v in bad.items())}")
    mode: Mode = "reasoning" if run.run.adapter_info.get("reasons", False) else "specialist"
    want = set(dimensions_for(mode))
    if set(scores) != want:
        raise KBError(
            f"a {mode} policy ({run.run.adapter}) is scored on exactly {', '.join(dimensions_for(mode))}; "
            f"got {', '.join(scores) or 'no scores'}"
        )
    suite = Suite.model_validate(run.run.suite_spec)
    category = category or suite.task(ep.task).category
    if not category:
        raise KBError(f"task {ep.task!r} declares no category in its suite; pass one (--category Pick)")
    entry_id = entry_id or f"{run.run.run_id}-{episode_id}"
    existing = read_entries(kb_dir) if (kb_dir / REVIEWED_FILE).is_file() else []
    if any(e.id == entry_id for e in existing):
        raise KBError(f"entry id {entry_id!r} is already in {kb_dir / REVIEWED_FILE}; pick another with --id")
    source = KBSource(
        run_id=run.run.run_id,
        adapter=run.run.adapter,
        episode_id=episode_id,
        suite_fingerprint=run.run.suite_fingerprint,
    )
    for e in existing:
        if e.source == source:
            raise KBError(f"episode {episode_id!r} of run {run.run.run_id!r} is already in the KB as {e.id!r}")
    try:
        entry = KBEntry(
            id=entry_id,
            task=ep.task,
            category=category,
            instruction=ep.instruction,
            mode=mode,
            success=ep.success,
            scores=scores,
            rationale=rationale,
            source=source,
            frames_file=f"{FRAMES_DIR}/{entry_id}.npz",
            num_steps=ep.num_steps,
            reviewed_by=reviewed_by,
        )
    except ValidationError as exc:
        raise KBError(f"invalid entry:\n{exc}") from None
    try:
        frames, steps = run.frames(episode_id)
    except StoreError as exc:
        raise KBError(str(exc)) from None
    idx = sample_indices(len(frames), FRAMES_PER_ENTRY)
    kept = query_frames(frames)  # the same sampling and shrinking a query gets
    frames_path = kb_dir / entry.frames_file
    _write_npz(frames_path, frames=kept, steps=np.asarray(steps)[idx].astype(np.int32))
    try:
        _write_entries(kb_dir, [*existing, entry])
    except BaseException:
        frames_path.unlink(missing_ok=True)
        raise
    return entry


# -- build --------------------------------------------------------------------------------------------------
def kb_build(
    kb_dir: str | Path,
    reviewed_jsonl: str | Path | None = None,
    text_embedder_spec: str = "hashing",
    image_embedder_spec: str = "histogram",
    *,
    text_options: dict[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """(Re)build the KB's index; returns the index metadata.

    `reviewed_jsonl` (default: the KB's own) replaces the KB's reviewed.jsonl when the build succeeds; its
    frames files must already be in the KB folder. Nothing in the KB changes unless every entry was
    embedded: the index files are written to temp files and renamed, npz first, then the json that names
    the npz's hash (a reader in between gets a clear "rebuild" error, never mixed vectors).
    """
    kb_dir = Path(kb_dir)
    source = Path(reviewed_jsonl) if reviewed_jsonl else kb_dir / REVIEWED_FILE
    entries = read_entries(source)
    if not entries:
        raise KBError(f"{source} has no entries; add some with `vlascore kb add`")
    missing = [e.id for e in entries if not (kb_dir / e.frames_file).is_file()]
    if missing:
        raise KBError(f"frames missing in {kb_dir} for: {', '.join(missing)} (re-add them with `vlascore kb add`)")
    total = len(entries) + 1
    # Embedders fail as EmbedderError (no API key, endpoint down, empty frames): one KBError for callers and the CLI.
    try:
        temb = text_embedder(text_embedder_spec, **(text_options or {}))
        iemb = image_embedder(image_embedder_spec)
        text = temb.embed_texts([e.instruction for e in entries])
        if on_progress:
            on_progress(1, total)
        scenes = []
        for i, e in enumerate(entries):
            frames, _ = read_entry_frames(kb_dir, e)
            scenes.append(embed_scene(iemb, query_frames(frames)))
            if on_progress:
                on_progress(i + 2, total)
    except EmbedderError as exc:
        raise KBError(f"cannot build the index of {kb_dir}: {exc}") from None
    image = np.stack(scenes).astype(np.float32)
    ids = [e.id for e in entries]
    npz_path = kb_dir / INDEX_NPZ
    _write_npz(npz_path, text=text.astype(np.float32), image=image, ids=np.asarray(ids))
    meta = {
        "schema_version": INDEX_SCHEMA_VERSION,
        "built_at": utcnow(),
        "text_embedder": {
            "spec": text_embedder_spec,
            "name": temb.name,
            "version": temb.version,
            "dim": int(text.shape[1]),
            "options": dict(text_options or {}),
        },  # endpoint, key variable
        "image_embedder": {
            "spec": image_embedder_spec,
            "name": iemb.name,
            "version": iemb.version,
            "dim": int(image.shape[1]),
        },
        "frames_per_entry": FRAMES_PER_ENTRY,
        "frame_max_side": FRAME_MAX_SIDE,
        "ids": ids,
        "input_digests": {e.id: _input_digest(kb_dir, e) for e in entries},
        "npz_sha256": _sha256(npz_path),
    }
    if source.resolve() != (kb_dir / REVIEWED_FILE).resolve():
        _write_entries(kb_dir, entries)
    meta = KBIndex.model_validate(meta).model_dump()  # what the reader will check, checked before it is written
    atomic_write_text(kb_dir / INDEX_JSON, json.dumps(meta, indent=2) + "\n")
    return meta


# -- load and retrieve --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    """One retrieved entry with the similarities that ranked it."""

    entry: KBEntry
    task_similarity: float
    """Cosine between the query instruction and the entry's."""
    scene_similarity: float | None
    """Cosine between pooled frame embeddings (None when the query had no frames)."""


@dataclass(frozen=True)
class Retrieval:
    """What retrieval decided, for debugging (`vlascore kb search`)."""

    category: str
    category_similarity: dict[str, float]
    """Category -> best instruction cosine among its (preferred) entries."""
    hits: list[Hit]


class KnowledgeBase:
    """A loaded KB: entries, their embeddings, and the embedders they were built with."""

    def __init__(
        self, root: Path, entries: list[KBEntry], meta: dict[str, Any], text: np.ndarray, image: np.ndarray
    ) -> None:
        self.root = root
        self.entries = entries
        self.meta = meta
        self.text = text
        self.image = image
        self.by_id = {e.id: e for e in entries}
        self._embedders: dict[tuple[str, str], Any] = {}

    @classmethod
    def load(cls, kb_dir: str | Path | None = None) -> KnowledgeBase:
        """Read reviewed.jsonl and the index; refuse an index that does not match the entries."""
        root = Path(kb_dir) if kb_dir is not None else default_kb_dir()
        entries = read_entries(root)
        rebuild = f"rebuild it with `vlascore kb build --kb {root}`"
        if not (root / INDEX_JSON).is_file():
            raise KBError(f"{root} has no index ({INDEX_JSON}); {rebuild}")
        try:
            meta = read_record(root / INDEX_JSON, KBIndex, error=KBError).model_dump()
        except KBError as exc:
            raise KBError(f"{exc}; {rebuild}") from None
        npz = root / INDEX_NPZ
        if not npz.is_file() or _sha256(npz) != meta.get("npz_sha256"):
            raise KBError(f"{npz} is missing or does not match {INDEX_JSON} (interrupted build?); {rebuild}")
        ids = [e.id for e in entries]
        if ids != meta.get("ids"):
            added = sorted(set(ids) - set(meta.get("ids", [])))
            removed = sorted(set(meta.get("ids", [])) - set(ids))
            what = (
                "; ".join(
                    s
                    for s in (
                        f"not indexed: {', '.join(added)}" if added else "",
                        f"indexed but gone: {', '.join(removed)}" if removed else "",
                    )
                    if s
                )
                or "entries reordered"
            )
            raise KBError(f"the index of {root} is out of date ({what}); {rebuild}")
        digests = meta.get("input_digests", {})
        changed = [e.id for e in entries if digests.get(e.id) != _input_digest(root, e)]
        if changed:
            raise KBError(
                f"the index of {root} is out of date (instruction, category or frames changed: "
                f"{', '.join(changed)}); {rebuild}"
            )
        text, image = read_npz(npz, "text", "image")
        return cls(root, entries, meta, text, image)

    def frames(self, entry_id: str) -> np.ndarray:
        return read_entry_frames(self.root, self.by_id[entry_id])[0]

    def _check_embedder(self, kind: str, spec: str) -> Any:
        stored = self.meta[f"{kind}_embedder"]
        # The options the index was built with (an embeddings endpoint, the name of its key variable) apply to
        # queries with the same embedder; built once per KB, so a query does not make a new client.
        options = (
            {k: v for k, v in stored.get("options", {}).items() if k in _CONNECTION_OPTIONS}
            if (spec == stored["spec"])
            else {}
        )
        if (kind, spec) not in self._embedders:
            try:
                self._embedders[kind, spec] = (text_embedder if kind == "text" else image_embedder)(spec, **options)
            except EmbedderError as exc:
                raise KBError(str(exc)) from None
        emb = self._embedders[kind, spec]
        if (emb.name, emb.version) != (stored["name"], stored["version"]):
            raise KBError(
                f"the KB index in {self.root} was built with {kind} embedder {stored['name']} {stored['version']}, "
                f"but {emb.name} {emb.version} was asked for; rebuild it with `vlascore kb build --kb {self.root} "
                f"--{kind}-embedder {spec}` (or set the judge's retrieval.{kind}_embedder to {stored['spec']!r})"
            )
        return emb

    def search(
        self,
        instruction: str,
        frames: np.ndarray | None,
        mode: Mode,
        settings: RetrievalSettings,
        exclude: EpisodeKey | None = None,
    ) -> Retrieval:
        """Task retrieval then scene retrieval, with the similarities (see the module docstring). Entries
        recorded from the `exclude` episode are skipped: a judge is never shown the episode it judges."""
        temb = self._check_embedder("text", settings.text_embedder)
        try:
            q_text = temb.embed_texts([instruction])[0]
        except EmbedderError as exc:  # e.g. the openai endpoint is down: one error type for callers
            raise KBError(str(exc)) from None
        if q_text.shape[0] != self.text.shape[1]:
            raise KBError(f"text embedding has {q_text.shape[0]} dims, the index {self.text.shape[1]}; rebuild the KB")
        task_sim = np.round(self.text @ q_text, 6)
        usable = [i for i, e in enumerate(self.entries) if exclude is None or e.source.key != exclude]
        if not usable:
            return Retrieval("", {}, [])
        covering = [i for i in usable if self.entries[i].covers(mode)]
        pool = covering or usable
        best: dict[str, float] = {}
        for i in pool:
            cat = self.entries[i].category
            best[cat] = max(best.get(cat, -np.inf), float(task_sim[i]))
        category = min(best, key=lambda c: (-best[c], c))
        in_cat = [i for i in usable if self.entries[i].category == category]
        scene_sim: np.ndarray | None = None
        if frames is not None and len(frames):
            iemb = self._check_embedder("image", settings.image_embedder)
            try:
                q_scene = embed_scene(iemb, query_frames(frames))
            except EmbedderError as exc:
                raise KBError(str(exc)) from None
            if q_scene.shape[0] != self.image.shape[1]:
                raise KBError(
                    f"image embedding has {q_scene.shape[0]} dims, the index {self.image.shape[1]}; rebuild the KB"
                )
            scene_sim = np.round(self.image @ q_scene, 6)

        def rank(i: int) -> tuple[bool, bool, float, float, str]:
            e, scene = self.entries[i], float(scene_sim[i]) if scene_sim is not None else 0.0
            return (not e.covers(mode), e.mode != mode, -scene, -float(task_sim[i]), e.id)

        chosen = sorted(in_cat, key=rank)[: settings.top_k]
        hits = [
            Hit(self.entries[i], float(task_sim[i]), float(scene_sim[i]) if scene_sim is not None else None)
            for i in chosen
        ]
        return Retrieval(category, dict(sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))), hits)

    def retrieve(
        self,
        instruction: str,
        frames: np.ndarray | None,
        mode: Mode,
        settings: RetrievalSettings,
        exclude: EpisodeKey | None = None,
    ) -> list[KBEntry]:
        """The top-k reference entries for a trajectory (empty when retrieval is disabled)."""
        if not settings.enabled:
            return []
        return [h.entry for h in self.search(instruction, frames, mode, settings, exclude).hits]
