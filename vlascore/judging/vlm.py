"""The VLM judge: a rendered request -> any OpenAI-compatible chat endpoint -> a validated verdict.

Every request has a total deadline (the endpoint's timeout: connecting, waiting and reading the whole reply);
transport failures (408, 409, 429, 5xx, timeouts, dropped connections) are retried with exponential backoff
(`max_retries`); any reply body that is not a chat completion (not JSON, no choices, too large) is a failed call;
a reply that is not the JSON contract of docs/vla_score.md §3 is re-asked with the validation error; after
`max_reasks` re-asks the judgement is recorded as **failed** with every raw reply and its reason, never as a
score. An episode whose frames cannot be read is a failed judgement too. Until the endpoint has answered once,
requests go one at a time, and credentials, a model name or a request the endpoint refuses (any 4xx that is not
retried: a server pinned to another model answers 400) abort the whole pass after that one request, with the
server's message, instead of recording one failure per episode.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
import zipfile
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from vlascore.judging.base import EpisodeJudge, JudgeContext
from vlascore.judging.cache import JudgeCache, cache_key, default_cache_dir
from vlascore.judging.definitions import JudgeError, JudgeSpec
from vlascore.judging.endpoint import Endpoint, JudgeAbort, LazyClient, RequestTimeout
from vlascore.judging.inputs import JudgeInput
from vlascore.judging.judgement import Judgement, Mode, Usage, dimensions_for
from vlascore.judging.prompt import JudgeRequest, render_request, sample_frames
from vlascore.paths import data_dir, load_yaml
from vlascore.store import LoadedRun
from vlascore.versioned import RecordError


def _score(value: Any) -> Any:
    """A score is an integer: a JSON number without a fraction, or a string of digits ("7"); never a boolean (which a
    lax int would read as 0 or 1) nor 7.5."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a score (an integer 0-10)")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int):
        return value
    raise ValueError(f"{value!r} is not an integer 0-10")


Score = Annotated[int, BeforeValidator(_score), Field(ge=0, le=10)]


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
        self._answered = threading.Event()
        """Set once the endpoint has answered a request: until then requests go one at a time (see `_call`)."""
        self._first = threading.Lock()
        self._aborted: JudgeAbort | None = None
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

    def close(self) -> None:
        self._client.close()

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
        try:
            req = self.request(inp)
        except (RecordError, OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            return Judgement(
                **self._base(inp, "", ikey, []),
                status="failed",
                failure_reason=f"cannot read the episode's frames or trace ({type(exc).__name__}: {exc})",
                latency_s=time.perf_counter() - started,
            )
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
        """One chat completion. Until the endpoint has answered once, one request at a time: a refusal that would
        repeat for every episode (a 4xx such as a server pinned to another model) then stops the pass after one
        request; once it has answered, a refusal is about this episode's request and fails this judgement only."""
        if self._answered.is_set():
            return self._complete(messages, usage)
        with self._first:
            if self._answered.is_set():
                return self._complete(messages, usage)
            if self._aborted is not None:  # the requests that waited behind the first stop with it
                raise self._aborted
            try:
                text = self._complete(messages, usage)
            except Refused as exc:
                self._aborted = JudgeAbort(
                    f"{self.endpoint.where} refused the first judge request (HTTP {exc.status}): {exc.message}. "
                    "Nothing was judged; check --judge-model (the server may serve another model) and --base-url."
                )
                raise self._aborted from exc
            except JudgeAbort as exc:
                self._aborted = exc
                raise
            self._answered.set()
            return text

    def _complete(self, messages: list[dict[str, Any]], usage: Usage) -> str:
        return complete(
            self._client,
            model=self.model,
            messages=messages,
            usage=usage,
            where=self.base_url,
            temperature=self.spec.request.temperature,
            max_tokens=self.spec.request.max_tokens,
            price=self.price,
        )[0]


MAX_REPLY_BYTES = 16 << 20
"""Largest reply body read from an endpoint (a verdict is a few KB); a larger one is a failed call, not a crash."""
_RETRIED = (408, 409, 429)
"""HTTP statuses retried besides 5xx (as the `openai` client retries); every other 4xx would only repeat."""
_MAX_BACKOFF_S = 60.0


class CallFailed(RuntimeError):
    """The endpoint failed after the retries, or answered with something that is not a chat completion."""


class Refused(CallFailed):
    """The endpoint refused the request with a status that retrying cannot change (400, 413, 422...)."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"HTTP {status} (1 request, not retried): {message}")


def _server_message(exc: Any) -> str:
    """What the server said about an error reply: its JSON `message` (OpenAI's and vLLM's shape), else the body."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        body = body.get("message") or (inner.get("message") if isinstance(inner, dict) else inner) or body
    if not body:
        try:
            body = exc.response.text
        except Exception:  # noqa: BLE001 - no readable body: the exception's own words
            body = str(exc)
    text = " ".join(str(body).split())
    return "".join(ch for ch in text if ch.isprintable())[:500] or f"{type(exc).__name__} (no message)"


def _retry_after(exc: Any, attempt: int) -> float:
    """Seconds before the next try: the server's Retry-After (-ms) when it sent one, else exponential backoff."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return min(_MAX_BACKOFF_S, max(0.0, float(headers.get(name, "")) * scale))
        except (TypeError, ValueError):
            continue
    return min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 4)


def _post(client: Any, body: dict[str, Any]) -> bytes:
    """One chat request; the reply's body, read up to MAX_REPLY_BYTES (the `openai` client would read any size)."""
    with client.chat.completions.with_streaming_response.create(**body) as response:
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > MAX_REPLY_BYTES:
                raise CallFailed(f"the reply is larger than {MAX_REPLY_BYTES} bytes; not a chat completion")
        return bytes(data)


def _chat_reply(data: bytes) -> tuple[str, dict[str, Any]]:
    """(the reply text, its usage) from a chat completion's JSON; CallFailed says what else the body is."""
    try:
        reply = json.loads(data)
    except (ValueError, RecursionError) as exc:
        head = data[:80].decode("utf-8", "replace")
        raise CallFailed(f"the reply is not JSON ({str(exc)[:100]}): {head!r}") from None
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not isinstance(choices, list) or not choices:
        raise CallFailed("the reply is not a chat completion: it has no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise CallFailed(f"the reply's message content is a {type(content).__name__}, not text")
    usage = reply.get("usage")
    return content or "", usage if isinstance(usage, dict) else {}


def _tokens(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def complete(
    caller: LazyClient,
    *,
    model: str,
    messages: list[dict[str, Any]],
    temperature: float,
    max_tokens: int,
    usage: Usage,
    where: str | None = None,
    price: tuple[float, float] | None = None,
) -> tuple[str, float | None]:
    """One chat completion, each try bounded by the endpoint's total timeout, retried (1 + max_retries tries in
    all) on timeouts, dropped connections, 408/409/429 and 5xx; counts answered requests in `usage`.

    Raises JudgeAbort when retrying cannot help (credentials refused, unknown model, unreachable), Refused for any
    other 4xx (with the server's message; one request sent), CallFailed when the tries ran out or the reply is not
    a chat completion (any body: not JSON, no choices, too large)."""
    import openai

    where = where or "the OpenAI API"
    tries = 1 + caller.endpoint.max_retries
    body = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
    last = ""
    for attempt in range(tries):
        try:
            data = caller.call(lambda client: _post(client, body))
        except RequestTimeout as exc:
            last, delay = f"timed out: {exc}", _retry_after(None, attempt)
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
            raise JudgeAbort(
                f"{where} refused the judge request ({type(exc).__name__}, HTTP {exc.status_code}): "
                f"{_server_message(exc)}. Check the API key variable, --base-url and --judge-model."
            ) from exc
        except openai.APIStatusError as exc:
            if exc.status_code not in _RETRIED and exc.status_code < 500:
                raise Refused(exc.status_code, _server_message(exc)) from exc
            last = f"HTTP {exc.status_code} ({type(exc).__name__}): {_server_message(exc)}"
            delay = _retry_after(exc, attempt)
        except openai.APITimeoutError as exc:
            last, delay = f"timed out: {exc}", _retry_after(None, attempt)
        except openai.APIConnectionError as exc:
            if attempt + 1 == tries:
                raise JudgeAbort(
                    f"cannot reach {where} ({exc}; {tries} tries); is the server running and --base-url right?"
                ) from exc
            last, delay = f"connection failed: {exc}", _retry_after(None, attempt)
        else:
            usage.calls += 1
            text, counts = _chat_reply(data)
            prompt_tokens, completion_tokens = _tokens(counts, "prompt_tokens"), _tokens(counts, "completion_tokens")
            usage.prompt_tokens += prompt_tokens
            usage.completion_tokens += completion_tokens
            cost = None
            if counts:  # a reply without token counts leaves the cost as it was
                if price is not None:
                    cost = (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6
                usage.cost_usd = None if cost is None or usage.cost_usd is None else usage.cost_usd + cost
            return text, cost
        if attempt + 1 < tries:
            time.sleep(delay)
    raise CallFailed(f"{last} ({tries} {'try' if tries == 1 else 'tries'})")
