"""What every command module shares: the consoles, the error exit, the `key=value` parser, and each option that
more than one command takes, defined once here (its flags, help and default).

Command modules import from here and from vlascore's services, never from the package root (`vlascore.cli`),
so there is no import loop; heavy modules are imported inside command bodies so `vlascore --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

if TYPE_CHECKING:
    from vlascore.judging.base import JudgeContext
    from vlascore.judging.endpoint import Endpoint

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` on stderr; raise the returned Exit (`raise fail(...)`)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def say(message: str) -> None:
    """A dim progress line on stderr."""
    err.print(f"[dim]{escape(message)}[/]", highlight=False, soft_wrap=True)


def parse_model_args(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs (`-M`, `-B`); values are parsed as YAML scalars (numbers, booleans, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"--model-arg expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def split_ids(text: str | None) -> list[str] | None:
    """`a,b, c` -> ['a', 'b', 'c']; None (or only commas) -> None."""
    ids = [t.strip() for t in (text or "").split(",") if t.strip()]
    return ids or None


class DefaultToRun(TyperGroup):
    """`vlascore judge RUN ...` is `vlascore judge run RUN ...`; the other subcommands keep their names."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer vendors click: its Context type
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


# -- policies and suites ---------------------------------------------------------------------------------------
ModelArgOpt = Annotated[
    list[str] | None, typer.Option("--model-arg", "-M", help="Adapter option key=value (repeatable).")
]
BackendArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--backend-arg",
        "-B",
        help="Backend option key=value (repeatable), e.g. the simpler backend's "
        "data_dir=/path/to/ManiSkill2_real2sim/data.",
    ),
]
SuiteOpt = Annotated[str, typer.Option("--suite", "-s", help="Built-in suite name or a suite YAML path.")]
TasksOpt = Annotated[str | None, typer.Option("--tasks", "-t", help="Comma-separated task ids [default: all].")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]

# -- scaling out: batching a shared policy, Ray clusters ---------------------------------------------------------
MaxBatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--max-batch-size",
        min=1,
        help="Most act requests a shared policy answers with one batched call (1: each alone). "
        "[default: run: workers x num-envs; serve: 1, no batching]",
    ),
]
MaxWaitMsOpt = Annotated[
    float | None,
    typer.Option(
        "--max-wait-ms",
        min=0,
        help="How long the first request of a batch waits for more (a batch also goes when full, or when every "
        "stream is waiting). [default: 5]",
    ),
]
DEFAULT_MAX_WAIT_MS = 5.0
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster to use: HOST:PORT of its head (`ray start --head`), or auto. [default: a local Ray on "
        "this machine]",
    ),
]

# -- run directories -------------------------------------------------------------------------------------------
RunArg = Annotated[Path, typer.Argument(metavar="RUN", help="Run directory written by `vlascore run`.")]
RunsArg = Annotated[
    list[Path], typer.Argument(metavar="RUN", help="Run directories (`vlascore run` and/or `vlascore qa`).")
]

# -- judges and the endpoint behind a VLM judge or grader ------------------------------------------------------
JudgeOpt = Annotated[
    str,
    typer.Option(
        "--judge",
        "-j",
        help="Judge name (`vlascore judge list`), `vla-score` (picks the reasoning or specialist VLM judge from "
        "each run's policy), or a judge YAML path.",
    ),
]
JudgeModelOpt = Annotated[
    str | None,
    typer.Option(
        "--judge-model", help="Chat model behind a VLM judge or grader (e.g. gpt-4o, or your server's model)."
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama) [default: OpenAI]."),
]
ApiKeyEnvOpt = Annotated[
    str, typer.Option("--api-key-env", help="Environment variable holding the API key (local servers need none).")
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Requests in flight at once.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per request before it is retried.")]
MaxRetriesOpt = Annotated[int, typer.Option("--max-retries", min=0, help="Retries on 429/5xx/timeouts.")]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Judgement cache [default: $VLASCORE_CACHE_DIR or ~/.cache/vlascore/judgements]."),
]
KbOpt = Annotated[Path | None, typer.Option("--kb", help="Retrieval knowledge base folder [default: judges/kb].")]
RetrievalOpt = Annotated[bool, typer.Option("--retrieval/--no-retrieval", help="Few-shot example from the KB.")]


def endpoint_defaults() -> Endpoint:
    """The endpoint settings' defaults, for the options' defaults (stated once, in `Endpoint`)."""
    from vlascore.judging.endpoint import Endpoint

    return Endpoint()


ENDPOINT = endpoint_defaults()


def endpoint(
    judge_model: str | None,
    base_url: str | None,
    api_key_env: str,
    concurrency: int = ENDPOINT.concurrency,
    timeout: float = ENDPOINT.timeout_s,
    max_retries: int = ENDPOINT.max_retries,
) -> Endpoint:
    """The typed endpoint settings, built once from the command line's options."""
    from vlascore.judging.endpoint import Endpoint

    return Endpoint(
        model=judge_model,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout_s=timeout,
        max_retries=max_retries,
    )


def judge_context(
    settings: Endpoint,
    cache_dir: Path | None = None,
    kb: Path | None = None,
    retrieval: bool = True,
    use_cache: bool = True,
    price: tuple[float, float] | None = None,
) -> JudgeContext:
    """What a judge pass is given besides the judge definition."""
    from vlascore.judging.base import JudgeContext

    return JudgeContext(
        endpoint=settings, cache_dir=cache_dir, kb_dir=kb, retrieval=retrieval, use_cache=use_cache, price=price
    )


def judge_errors() -> tuple[type[BaseException], ...]:
    """What a judge pass raises for a problem the user can fix (printed as one line)."""
    from vlascore.judging import JudgeError
    from vlascore.judging.endpoint import JudgeAbort
    from vlascore.versioned import RecordError

    return (JudgeError, JudgeAbort, RecordError, KeyError, ValueError)
