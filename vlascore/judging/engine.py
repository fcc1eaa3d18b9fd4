"""A judge pass over a run: load the run's episodes, judge each (grounded formulas or a VLM with bounded
concurrency, cache and retrieval), and write <run>/judgements/<label>.json atomically at the end."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vlascore.judging.base import JUDGES, EpisodeJudge, JudgeContext
from vlascore.judging.catalog import load_judge
from vlascore.judging.definitions import JudgeError, JudgeSpec
from vlascore.judging.inputs import JudgeInput, episode_inputs
from vlascore.judging.judgement import JUDGEMENTS_DIR, Judgement, JudgementFile, Usage
from vlascore.store import LoadedRun, atomic_write_text, load_run
from vlascore.versioned import NewerRecordError, RecordError, read_record


def label_for(spec: JudgeSpec, model: str | None) -> str:
    """File stem of a judgement set: `grounded`, `vla-score-reasoning--gpt-4o`."""
    return spec.name if model is None else f"{spec.name}--{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}"


def make_judge(run: LoadedRun, judge: str, context: JudgeContext | None = None) -> EpisodeJudge:
    """The judge for this run's policy kind (reasoning or specialist, from the adapter's declaration)."""
    reasons = bool(run.run.adapter_info.get("reasons", False))
    spec = load_judge(judge, reasons=reasons)
    return JUDGES.get(spec.kind).for_run(spec, spec.mode_for(reasons), run, context or JudgeContext())


def judge_inputs(
    judge: EpisodeJudge,
    inputs: Iterable[JudgeInput],
    concurrency: int = 1,
    use_cache: bool = True,
    on_judgement: Callable[[Judgement], None] | None = None,
) -> list[Judgement]:
    """Judge every input, `concurrency` at a time; results in input order. A JudgeAbort stops the pass.

    Verdicts the judge can serve from its cache without work (`cached`) are taken first, in this thread: a
    thread pool would only add overhead to a re-judge."""
    inputs = list(inputs)
    results: list[Judgement | None] = [None] * len(inputs)
    if use_cache:
        for k, inp in enumerate(inputs):
            results[k] = hit = judge.cached(inp)
            if hit is not None and on_judgement:
                on_judgement(hit)
    todo = [k for k, r in enumerate(results) if r is None]
    if concurrency <= 1 or len(todo) <= 1:
        for k in todo:
            results[k] = judge.judge(inputs[k], use_cache)
            if on_judgement:
                on_judgement(results[k])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="judge") as pool:
        futures = {k: pool.submit(judge.judge, inputs[k], use_cache) for k in todo}
        try:
            for k, future in futures.items():
                results[k] = future.result()
                if on_judgement:
                    on_judgement(results[k])  # type: ignore[arg-type]
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    return results  # type: ignore[return-value]


def judgements_path(run_dir: str | Path, label: str) -> Path:
    return Path(run_dir) / JUDGEMENTS_DIR / f"{label}.json"


def judge_run(
    run_dir: str | Path,
    judge: str = "grounded",
    context: JudgeContext | None = None,
    *,
    episode_ids: list[str] | None = None,
    label: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_judgement: Callable[[Judgement], None] | None = None,
) -> JudgementFile:
    """Judge a run's completed episodes and write the judgement file; returns it."""
    started = time.perf_counter()
    context = context or JudgeContext()
    run = load_run(run_dir)
    episode_judge = make_judge(run, judge, context)
    inputs = episode_inputs(run, episode_ids)
    label = label or label_for(episode_judge.spec, episode_judge.model)
    path = judgements_path(run.path, label)
    previous = _read(path) if path.exists() else None
    if previous is not None and (previous.judge_version, previous.judge_model) == (
        episode_judge.spec.effective_version,
        episode_judge.model,
    ):
        episode_judge.prime(previous)
    if on_start:
        on_start(len(inputs))
    try:
        judgements = judge_inputs(episode_judge, inputs, context.endpoint.concurrency, context.use_cache, on_judgement)
    finally:
        episode_judge.close()
    if previous is not None and (previous.judge_version, previous.judge_model) == (
        episode_judge.spec.effective_version,
        episode_judge.model,
    ):
        judgements = keep_earlier_verdicts(previous, judgements)
    usage = Usage(cost_usd=0.0)
    for j in judgements:
        usage.add(j.usage)
    spec = episode_judge.spec
    result = JudgementFile(
        label=label,
        run_id=run.run.run_id,
        judge=spec.name,
        judge_version=spec.effective_version,
        judge_model=episode_judge.model,
        base_url=context.endpoint.base_url if episode_judge.calls_model else None,
        settings=spec.model_dump(mode="json", include={"frames", "trace", "retrieval", "request", "params"}),
        duration_s=time.perf_counter() - started,
        usage=usage,
        judgements=judgements,
    )
    if not _same_verdicts(previous, result):  # a re-judge served wholly from the cache leaves the file as it is
        _write(path, result, episode_ids is not None, previous)
    return result


def keep_earlier_verdicts(previous: JudgementFile, judgements: list[Judgement]) -> list[Judgement]:
    """A failed judgement gives way to the earlier valid verdict on the same content (same input key or request
    hash, same judge version and model): a re-judge against a failing endpoint (`--no-cache` included) never turns
    a good verdict into a failure. A changed episode keeps its new failure: its old verdict is about other data."""
    earlier = {j.episode_id: j for j in previous.judgements if j.status == "ok"}
    out = []
    for j in judgements:
        old = earlier.get(j.episode_id)
        same = old is not None and (
            (old.input_key and old.input_key == j.input_key)
            or (old.request_hash and old.request_hash == j.request_hash)
        )
        out.append(old if j.status == "failed" and same and old is not None else j)
    return out


def _read(path: Path) -> JudgementFile | None:
    """A judgement file, or None when unreadable (it is then archived, not trusted); a newer version is refused."""
    try:
        return read_record(path, JudgementFile)
    except NewerRecordError as exc:
        raise JudgeError(str(exc)) from None
    except RecordError:
        return None


def _same_verdicts(old: JudgementFile | None, new: JudgementFile) -> bool:
    """Whether `new` only repeats `old`: same judge, every verdict cached from the same request, same episodes."""
    if old is None or (old.judge_version, old.judge_model) != (new.judge_version, new.judge_model):
        return False
    if not new.judgements or not all(j.cached for j in new.judgements):
        return False
    return [(j.episode_id, j.request_hash) for j in old.judgements] == [
        (j.episode_id, j.request_hash) for j in new.judgements
    ]


def _write(path: Path, result: JudgementFile, partial: bool, old: JudgementFile | None) -> None:
    """Write the set; a partial pass merges into the existing set `old` if it has the same judge version and
    model. The earlier file is kept in judgements/superseded/ whenever it is not merely extended: a set from another
    version (or an unreadable file) is moved there, and a copy is kept when a new verdict replaces a different
    valid one (a `--no-cache` re-judge)."""
    if path.exists():
        same = old is not None and (old.judge_version, old.judge_model) == (result.judge_version, result.judge_model)
        if same and partial and old is not None:
            fresh = {j.episode_id for j in result.judgements}
            result.judgements = [j for j in old.judgements if j.episode_id not in fresh] + result.judgements
        if not same:
            path.replace(_archive_path(path, old))
        elif old is not None and _replaces_verdicts(old, result):
            shutil.copy2(path, _archive_path(path, old))
    atomic_write_text(path, result.model_dump_json(indent=1))


def _archive_path(path: Path, old: JudgementFile | None) -> Path:
    stamp = re.sub(r"[^0-9T]", "", old.created_at) if old is not None else str(int(time.time()))
    archive = path.parent / "superseded" / f"{path.stem}.{stamp}.json"
    archive.parent.mkdir(parents=True, exist_ok=True)
    return archive


def _replaces_verdicts(old: JudgementFile, new: JudgementFile) -> bool:
    """Whether `new` changes or drops a valid verdict of `old`."""
    now = {j.episode_id: j for j in new.judgements}
    return any(
        j.status == "ok"
        and ((n := now.get(j.episode_id)) is None or (n.status, n.scores, n.thought) != (j.status, j.scores, j.thought))
        for j in old.judgements
    )
