"""What every command module shares: the consoles, the error exit, the `key=value` parser, and each option that
more than one command takes, defined once here (its flags, help and default).

Command modules import from here and from vlascore's services, never from the package root (`vlascore.cli`),
so there is no import loop; heavy modules are imported inside command bodies so `vlascore --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape as rich_escape
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


def parse_model_args(pairs: list[str], flag: str = "--model-arg") -> dict[str, str]:
    """`key=value` pairs (`-M`, `-B`) as text: the adapter or backend converts each value to the type its
    constructor declares (vlascore.registry.construct), so `revision=0123` stays "0123" where it is a string."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"{flag} expects key=value, got {pair!r}")
        out[key.strip()] = value
    return out


def default_run_dir(model: str, what: str) -> Path:
    """runs/MODEL-WHAT, with a `path/to/file.py:Class` model named `file-Class` (a file name, not a path)."""
    import re

    where, sep, attr = model.rpartition(":")
    name = f"{Path(where).stem}-{attr}" if sep else model
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{name}-{what}").strip("._-")
    return Path("runs") / (safe or what)


def split_ids(text: str | None) -> list[str] | None:
    """`a,b, c` -> ['a', 'b', 'c']; None (or only commas) -> None."""
    ids = [t.strip() for t in (text or "").split(",") if t.strip()]
    return ids or None


_CONTROL = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)])
_CONTROL.update(dict.fromkeys(map(ord, "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e")))
_CONTROL.update(dict.fromkeys(range(0x2066, 0x206A)))
for _keep in "\n\t":
    del _CONTROL[ord(_keep)]


def printable(text: object) -> str:
    """`text` without the characters a terminal acts on: C0 and C1 controls but newline and tab (ESC starts ANSI
    sequences that recolour, retitle or rewrite the owner's terminal), and bidi controls that reorder what is
    shown. Everything printed from data (names, ids, paths, messages quoting a file) goes through it."""
    return str(text).translate(_CONTROL)


def escape(text: object) -> str:
    """`printable(text)` with rich markup escaped: what every command prints of data it did not write itself."""
    return rich_escape(printable(text))


class OneLineErrors(TyperGroup):
    """The top-level group: an error from the environment that no command catches (disk full, a read-only or
    missing folder, a name too long, a damaged database, memory) is one line on stderr, not a traceback."""

    def invoke(self, ctx: Any) -> Any:
        import sqlite3

        try:
            return super().invoke(ctx)
        except OSError as exc:
            raise fail(_os_error(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise fail(
                f"a database could not be read or written ({exc}); if the disk is full, free space and run again"
            ) from None
        except MemoryError:
            raise fail("out of memory; run on fewer episodes or tasks at once, or on a machine with more") from None
        except RecursionError:
            raise fail("an input is nested too deep to read") from None


def _os_error(exc: OSError) -> str:
    import errno

    where = f" ({str(exc.filename)[:200]})" if exc.filename else ""
    hints = {
        errno.ENOSPC: "the disk is full: free space, then run the same command again (finished work is kept)",
        errno.EDQUOT: "the disk quota is exhausted: free space, then run the same command again",
        errno.EROFS: "the file system is read-only: write somewhere else (e.g. --out)",
        errno.EACCES: "permission denied: write somewhere you may (e.g. --out), or fix the folder's permissions",
        errno.EPERM: "operation not permitted: write somewhere else, or fix the folder's permissions",
        errno.ENAMETOOLONG: "a file name is too long: choose a shorter path",
        errno.ENOTDIR: "a path goes through a file as if it were a folder: choose another path",
        errno.EEXIST: "a path exists already and is not what was expected: choose another path",
    }
    return f"{hints.get(exc.errno or 0, exc.strerror or str(exc))}{where}"


def output_folder(path: Path, option: str = "--out") -> None:
    """Refuse an output folder that cannot be one, before any work: a file, a path through a file, a name too long."""
    too_long = [p for p in path.parts if len(os.fsencode(p)) > 255]
    if too_long or len(os.fsencode(str(path.absolute()))) > 4000:
        raise fail(f"{option} {str(path)[:100]}... is too long a name: choose a shorter one")
    if path.exists() and not path.is_dir():
        raise fail(f"{option} {path} is a file: give a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise fail(f"{option} {path} goes through {parent}, which is a file: give a folder")
            break


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
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON to stdout instead of tables (redirect it to a file).")
]

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
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", help="Seconds a request may take in all (not per read) before it is retried."),
]
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
