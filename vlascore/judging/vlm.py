"""The VLM judge: a rendered request -> any OpenAI-compatible chat endpoint -> a validated verdict.

Transport failures (429, 5xx, timeouts, dropped connections) are retried with exponential backoff by the
`openai` client itself (`max_retries`); a reply that is not the JSON contract of docs/vla_score.md §3 is re-asked with
the validation error; after `max_reasks` re-asks the judgement is recorded as **failed** with every raw
reply, never as a score. Credentials or a model name the endpoint rejects abort the whole pass instead of
recording one failure per episode.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vlascore.judging.base import EpisodeJudge, JudgeContext
from vlascore.judging.cache import JudgeCache, cache_key, default_cache_dir
from vlascore.judging.definitions import JudgeError, JudgeSpec
from vlascore.judging.endpoint import Endpoint, JudgeAbort, LazyClient
from vlascore.judging.inputs import JudgeInput
from vlascore.judging.judgement import Judgement, Mode, Usage, dimensions_for
from vlascore.judging.prompt import JudgeRequest, render_request, sample_frames
from vlascore.paths import data_dir, load_yaml
from vlascore.store import LoadedRun

Score = Annotated[int, Field(ge=0, le=10)]


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Action: Score
    Intention: Score
    Reasoning: Score | None = None
    Alignment: Score | None = None
    Success: bool | None = None


class Verdict(BaseModel):
    """The judge's JSON contract (docs/vla_score.md §3): {"Thought": str, "Result": {...}}."""

    model_config = ConfigDict(extra="ignore")
    Thought: str = ""
    Result: _Result


def _first_json_object(text: str) -> str:
    """The first balanced {...} in a reply (models wrap JSON in prose or ``` fences)."""
    start = text.find("{")
    if start < 0:
        raise ValueError("the reply contains no JSON object")
    depth, in_str, esc = 0, False, False
    for k in range(start, len(text)):
        ch = text[k]
        if in_str:
            esc = not esc and ch == "\\"
            if ch == '"' and not esc:
                in_str = False
            elif ch != "\\":
                esc = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : k + 1]
    raise ValueError("the JSON object in the reply is not closed")


def parse_verdict(text: str, mode: Mode) -> tuple[dict[str, int], str, bool | None]:
    """(scores for the mode's dimensions, thought, success claim); ValueError says what is wrong."""
    blob = _first_json_object(re.sub(r"```(?:json)?", "", text or ""))
    try:
        verdict = Verdict.model_validate(json.loads(blob))
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"the JSON does not match the contract: {problems}") from None
    scores = {}
    for key in dimensions_for(mode):
        value = getattr(verdict.Result, key)
        if value is None:
            raise ValueError(f'"Result" is missing "{key}" (an integer 0-10)')
        scores[key] = int(value)
    return scores, verdict.Thought, verdict.Result.Success


def load_prices() -> dict[str, dict[str, float]]:
    path = data_dir("judges") / "pricing" / "prices.yaml"
    return load_yaml(path.read_text()) or {} if path.exists() else {}


def _kb_fingerprint(kb: Any) -> str:
    """The knowledge base's entries (rationales and scores included) and index, as one digest."""
    h = hashlib.sha256()
    for name in ("reviewed.jsonl", "index.json"):
        path = kb.root / name
        h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()


class VlmJudge(EpisodeJudge):
    """Judges episodes with one judge spec and one chat model. Thread-safe: `judge()` may run concurrently."""

    calls_model = True

    @classmethod
    def for_run(cls, spec: JudgeSpec, mode: Mode, run: LoadedRun, context: JudgeContext) -> VlmJudge:
        kb = None
        if spec.retrieval.enabled and context.retrieval is not False:
            from vlascore.judging.retrieval import KnowledgeBase

            kb = KnowledgeBase.load(Path(context.kb_dir) if context.kb_dir else data_dir("judges") / "kb")
        cache = JudgeCache((context.cache_dir or default_cache_dir()) if context.use_cache else None)
        return cls(spec, mode, context.endpoint, cache=cache, kb=kb, price=context.price)

    def __init__(
        self,
        spec: JudgeSpec,
        mode: Mode,
        endpoint: Endpoint,
        *,
        cache: JudgeCache | None = None,
        kb: Any = None,
        price: tuple[float, float] | None = None,
    ) -> None:
        if not endpoint.model:
            raise JudgeError(
                f"judge {spec.name!r} calls a VLM: pass --judge-model (e.g. gpt-4o, or the model name "
                "your vLLM / llama.cpp / Ollama server serves, with --base-url)"
            )
        self._client = LazyClient(endpoint, needs="no API key")
        self.spec, self.mode, self.endpoint = spec, mode, endpoint
        self.model: str = endpoint.model
        self.base_url = endpoint.base_url
        self.cache = cache or JudgeCache(None)
        self.kb = kb
        self._kb_fingerprint = _kb_fingerprint(kb) if kb is not None else None
        self.memo: dict[str, str] = {}
        """Input key -> request hash of earlier verdicts (see `prime`)."""
        if price is None and self.model in (prices := load_prices()):
            price = (float(prices[self.model]["input"]), float(prices[self.model]["output"]))
        self.price = price

    @property
    def client(self) -> Any:
        """The `openai` client, built on first use (a pass served from the cache never builds it)."""
        return self._client.get()

    def prime(self, previous: Any) -> None:
        """Learn the request hashes of a previous pass's verdicts (a JudgementFile of the same judge version and
        model), so a re-judge finds them in the cache without reading frames or rendering prompts."""
        self.memo.update({j.input_key: j.request_hash for j in previous.judgements if j.input_key and j.request_hash})

    def input_key(self, inp: JudgeInput) -> str | None:
        """Digest of everything the request is rendered from: judge version, model, mode, the knowledge base, and
        the episode's recorded content; None when the episode's content cannot be identified without reading it."""
        if inp.content_key is None:
            return None
        kb = self._kb_fingerprint if self.spec.retrieval.enabled else None
        blob = "\0".join((self.spec.effective_version, self.model, self.mode, kb or "-", inp.content_key))
        return hashlib.sha256(blob.encode()).hexdigest()

    def request(self, inp: JudgeInput) -> JudgeRequest:
        loaded = inp.load_frames()
        examples = []
        if self.kb is not None and self.spec.retrieval.enabled:  # scene retrieval samples the whole episode
            examples = self.kb.retrieve(inp.episode.instruction, loaded[0], self.mode, self.spec.retrieval, inp.key)
        return render_request(inp, self.spec, self.mode, examples, sample_frames(inp, self.spec.frames, loaded))

    def _base(self, inp: JudgeInput, request_hash: str, input_key: str | None, examples: list[str]) -> dict[str, Any]:
        return {
            "episode_id": inp.episode_id,
            "judge": self.spec.name,
            "judge_version": self.spec.effective_version,
            "judge_model": self.model,
            "mode": self.mode,
            "request_hash": request_hash,
            "input_key": input_key or "",
            "examples": examples,
        }

    def _from_cache(self, base: dict[str, Any], hit: dict[str, Any], started: float) -> Judgement:
        return Judgement(
            **base,
            status="ok",
            scores=hit["scores"],
            thought=hit["thought"],
            failure_modes=self.spec.taxonomy.tag(hit["thought"]),
            success_claim=hit.get("success_claim"),
            raw_replies=hit.get("raw_replies", []),
            cached=True,
            usage=Usage(cache_hits=1),
            latency_s=time.perf_counter() - started,
        )

    def cached(self, inp: JudgeInput) -> Judgement | None:
        """The verdict of an earlier pass on the same input, from the cache without rendering; None otherwise."""
        started = time.perf_counter()
        ikey = self.input_key(inp)
        if ikey is None or (known := self.memo.get(ikey)) is None:
            return None
        hit = self.cache.get(cache_key(self.spec.effective_version, self.model, known))
        return (
            None
            if hit is None
            else self._from_cache(self._base(inp, known, ikey, hit.get("examples", [])), hit, started)
        )

    def judge(self, inp: JudgeInput, use_cache: bool = True) -> Judgement:
        started = time.perf_counter()
        if use_cache and (done := self.cached(inp)) is not None:
            return done
        ikey = self.input_key(inp)
        req = self.request(inp)
        key = cache_key(self.spec.effective_version, self.model, req.key)
        base = self._base(inp, req.key, ikey, req.examples)
        if use_cache and (hit := self.cache.get(key)) is not None:
            return self._from_cache(base, hit, started)
        messages = req.messages()
        usage, replies, error = Usage(cost_usd=0.0 if self.price else None), [], ""
        for _ in range(self.spec.request.max_reasks + 1):
            try:
                text = self._call(messages, usage)
            except CallFailed as exc:
                error = str(exc)
                break
            replies.append(text)
            try:
                scores, thought, claim = parse_verdict(text, self.mode)
            except ValueError as exc:
                error = str(exc)
                messages = [
                    *messages,
                    {"role": "assistant", "content": text},
                    {
                        "role": "user",
                        "content": (
                            f"Your reply could not be used: {error}. Reply again with only the JSON object "
                            'in the required format: {"Thought": "...", "Result": {...}}.'
                        ),
                    },
                ]
                continue
            self.cache.put(
                key,
                {
                    "scores": scores,
                    "thought": thought,
                    "success_claim": claim,
                    "raw_replies": replies,
                    "examples": req.examples,
                },
            )
            return Judgement(
                **base,
                status="ok",
                scores=scores,
                thought=thought,
                success_claim=claim,
                failure_modes=self.spec.taxonomy.tag(thought),
                raw_replies=replies,
                attempts=len(replies),
                usage=usage,
                latency_s=time.perf_counter() - started,
            )
        return Judgement(
            **base,
            status="failed",
            failure_reason=f"no valid verdict after {usage.calls} answered request(s): {error}",
            raw_replies=replies,
            attempts=usage.calls,
            usage=usage,
            latency_s=time.perf_counter() - started,
        )

    def _call(self, messages: list[dict[str, Any]], usage: Usage) -> str:
        return complete(
            self.client,
            model=self.model,
            messages=messages,
            usage=usage,
            where=self.base_url,
            temperature=self.spec.request.temperature,
            max_tokens=self.spec.request.max_tokens,
            price=self.price,
        )[0]


def complete(
    client: Any,
    *,
    model: str,
    messages: list[dict[str, Any]],
    temperature: float,
    max_tokens: int,
    usage: Usage,
    where: str | None = None,
    price: tuple[float, float] | None = None,
) -> tuple[str, float | None]:
    """One chat completion through the `openai` client; counts it in `usage`. Raises JudgeAbort when retrying
    cannot help (refused, unreachable) and CallFailed when the endpoint failed after the client's retries."""
    import openai

    where = where or "the OpenAI API"
    try:
        response = client.chat.completions.create(
            model=model,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
        )
    except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
        raise JudgeAbort(
            f"{where} refused the judge request ({type(exc).__name__}): {exc}. "
            "Check the API key variable, --base-url and --judge-model."
        ) from exc
    except openai.APITimeoutError as exc:
        raise CallFailed(f"timed out after {client.max_retries} retries: {exc}") from exc
    except openai.APIConnectionError as exc:
        raise JudgeAbort(f"cannot reach {where} ({exc}); is the server running and --base-url right?") from exc
    except openai.APIError as exc:
        raise CallFailed(f"{type(exc).__name__} after {client.max_retries} retries: {exc}") from exc
    usage.calls += 1
    cost = None
    if response.usage is not None:
        usage.prompt_tokens += response.usage.prompt_tokens
        usage.completion_tokens += response.usage.completion_tokens
        if price is not None:
            cost = (response.usage.prompt_tokens * price[0] + response.usage.completion_tokens * price[1]) / 1e6
        usage.cost_usd = None if cost is None or usage.cost_usd is None else usage.cost_usd + cost
    return (response.choices[0].message.content or "" if response.choices else ""), cost


class CallFailed(RuntimeError):
    """The endpoint failed after the client's retries."""
