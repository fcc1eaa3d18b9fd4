"""What is there and whether it works: `vlascore tasks`, `models`, `adapter check` and `doctor`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vlascore.cli._common import (
    BackendArgOpt,
    JsonOpt,
    ModelArgOpt,
    RayAddressOpt,
    SuiteOpt,
    TasksOpt,
    console,
    err,
    escape,
    fail,
    parse_model_args,
    split_ids,
)
from vlascore.cli._tables import suite_tasks_table

tasks_app = typer.Typer(help="List and validate task suites (YAML files in tasks/ or your own).", no_args_is_help=True)

models_app = typer.Typer(help="Registered policy adapters.", no_args_is_help=True)

adapter_app = typer.Typer(
    help="Check a policy adapter's conformance (like Gymnasium's env checker).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
    app.add_typer(tasks_app, name="tasks")
    app.add_typer(models_app, name="models")
    app.add_typer(adapter_app, name="adapter")


@tasks_app.command("list")
def tasks_list(
    suite: Annotated[str | None, typer.Argument(help="Show the tasks of this suite (name or YAML path).")] = None,
) -> None:
    """List the built-in suites, or the tasks of one suite. Example: vlascore tasks list tabletop"""
    from vlascore.suites import SuiteError, builtin_suite_paths, load_suite

    if suite is None:
        table = Table(title="suites")
        for col in ("suite", "protocol", "fingerprint", "backend", "tasks", "description"):
            table.add_column(col)
        for name, path in builtin_suite_paths().items():
            try:
                s = load_suite(path)
            except SuiteError as exc:
                table.add_row(name, "-", "-", "-", "-", f"[red]invalid: {exc}[/]")
                continue
            table.add_row(
                s.name, s.protocol_version, s.fingerprint, s.backend, str(len(s.tasks)), s.description.split(". ")[0]
            )
        console.print(table)
        return
    try:
        s = load_suite(suite)
    except SuiteError as exc:
        raise fail(str(exc)) from None
    console.print(suite_tasks_table(s))
    if s.columns or s.averages:
        console.print(
            f"columns: {', '.join(f'{c.id} = mean of {chr(43).join(c.tasks)}' for c in s.result_columns)}",
            soft_wrap=True,
        )
    for a in s.averages:
        console.print(f"average {escape(a.id)}: mean of {escape(', '.join(a.columns))}", soft_wrap=True)


@tasks_app.command("validate")
def tasks_validate(paths: Annotated[list[Path], typer.Argument(help="Suite YAML files to check.")]) -> None:
    """Check suite files without running anything; exits non-zero on the first invalid one.

    Example: vlascore tasks validate tasks/*.yaml
    """
    from vlascore.suites import SuiteError, load_suite_file

    bad = 0
    for path in paths:
        try:
            s = load_suite_file(path)
        except SuiteError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            bad += 1
            continue
        console.print(
            f"[green]ok[/] {path}: suite {s.name!r}, {len(s.tasks)} task(s), protocol {s.protocol_version}, "
            f"fingerprint {s.fingerprint}"
        )
    if bad:
        raise typer.Exit(1)


@models_app.command("list")
def models_list() -> None:
    """Registered adapters (built-in and from the `vlascore.adapters` entry-point group) and what each needs.

    A third-party package registers one in its pyproject.toml:

      [project.entry-points."vlascore.adapters"]
      myvla = "my_package.adapter:MyVLAAdapter"
    """
    from vlascore.adapters import ADAPTERS

    table = Table(title="adapters")
    for col in ("name", "from", "reasons", "QA", "action space", "chunk", "needs", "status"):
        table.add_column(col, overflow="fold", ratio=3 if col == "needs" else None)  # install steps: never cut
    for name in ADAPTERS.names():
        origin = f"{ADAPTERS.origin(name)}\n[dim]{escape(ADAPTERS.target(name))}[/]"
        try:
            cls = ADAPTERS.get(name)
            space = cls.action_space
            extras = ", ".join(f"vlascore[{e}]" for e in cls.extras)
            needs = "; ".join(x for x in (extras, cls.needs) if x) or "-"
            chunk = str(cls.chunk_size) + (f" (runs {cls.execute_steps})" if cls.execute_steps else "")
            acts = f"{space.mode} {space.rotation} dim {space.dim}" + ("" if space.normalized else " (units)")
            table.add_row(
                name,
                origin,
                "yes" if cls.reasons else "no",
                "yes" if cls.answers_questions else "no",
                acts if cls.acts else "- (QA only)",
                "-" if not cls.acts else chunk,
                escape(needs),
                "[green]ok[/]",
            )
        except Exception as exc:  # noqa: BLE001 - listing must survive one broken plugin
            table.add_row(name, origin, "?", "?", "?", "?", "?", f"[red]{escape(f'{type(exc).__name__}: {exc}')}[/]")
    console.print(table)
    console.print(
        "[dim]Declared conventions are converted to each task's when they differ (see docs/adapters.md); "
        "`vlascore models show NAME` shows one in full, `vlascore adapter check NAME` tests it. QA: answers "
        "`vlascore qa` (a VLM side). Your own class needs no registering: -m path/to/file.py:ClassName.[/]"
    )


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Adapter name, or path/to/file.py:ClassName, package.module:ClassName.")],
    as_json: JsonOpt = False,
) -> None:
    """Everything an adapter declares: where it comes from, its action convention, chunking, whether it reasons
    and answers questions, what it needs installed, and its options (-M key=value) with their types and defaults.

    Examples:

      vlascore models show openvla

      vlascore models show ./mypolicy.py:Zero --json
    """
    import inspect

    from vlascore.adapters import ADAPTERS
    from vlascore.registry import UnknownPluginError

    try:
        cls = ADAPTERS.get(name)
    except UnknownPluginError as exc:
        raise fail(str(exc)) from None
    options: list[dict[str, Any]] = [
        {
            "name": p.name,
            "type": _annotation(p.annotation),
            "default": None if p.default is inspect.Parameter.empty else repr(p.default),
            "required": p.default is inspect.Parameter.empty,
        }
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    origin = ADAPTERS.origin(name) if name in ADAPTERS.names() else "a class given by reference"
    extras = [f"vlascore[{e}]" for e in cls.extras]
    description = inspect.getdoc(cls) or ""
    info = {
        "name": name,
        "from": origin,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "description": description,
        "acts": cls.acts,
        "action_space": cls.action_space.model_dump(),
        "chunk_size": cls.chunk_size,
        "execute_steps": cls.execute_steps,
        "reasons": cls.reasons,
        "answers_questions": cls.answers_questions,
        "uses_privileged_state": cls.uses_privileged_state,
        "extras": extras,
        "needs": cls.needs,
        "options": options,
    }
    if as_json:
        print(json.dumps(info, indent=2))
        return
    console.print(f"[bold]{escape(name)}[/] ({escape(origin)}: {escape(str(info['class']))})", highlight=False)
    if description:
        console.print(escape(description), highlight=False)
    space = cls.action_space
    facts = {
        "acts": f"{space.mode}, rotation {space.rotation}, dim {space.dim}, "
        + ("normalised" if space.normalized else "in units")
        + f", gripper open = {space.gripper_open}"
        if cls.acts
        else "no (QA only)",
        "chunk": f"{cls.chunk_size} action(s) per call" + (f", runs {cls.execute_steps}" if cls.execute_steps else ""),
        "reasons": "yes (judged on R, A, I, RA)" if cls.reasons else "no (a specialist: judged on A and I)",
        "answers QA": "yes" if cls.answers_questions else "no",
        "needs": "; ".join(x for x in (", ".join(extras), cls.needs) if x) or "nothing beyond vlascore",
    }
    for key, value in facts.items():
        console.print(f"  [bold]{key}[/]: {escape(value)}", highlight=False, soft_wrap=True)
    table = Table(title="options (-M key=value)")
    for col in ("option", "type", "default"):
        table.add_column(col, overflow="fold")
    for o in options:
        table.add_row(o["name"], escape(o["type"]), "[bold]required[/]" if o["required"] else escape(str(o["default"])))
    console.print(table if options else "  no options")


def _annotation(annotation: object) -> str:
    import inspect

    if annotation is inspect.Parameter.empty:
        return "text"
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


@adapter_app.command("check")
def adapter_check(
    model: Annotated[str, typer.Argument(help="Adapter name (see `vlascore models list`).")],
    model_arg: ModelArgOpt = None,
    suite: SuiteOpt = "tabletop",
    tasks: TasksOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Calls per determinism / batch check.")] = 3,
    calls: Annotated[int, typer.Option("--calls", min=0, help="Timed calls for the latency figure.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Episode seed given to reset().")] = 0,
    max_latency_ms: Annotated[
        float | None, typer.Option("--max-latency-ms", help="Fail when the median call takes longer.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Conformance checks for an adapter, like Gymnasium's env checker; exits 1 listing the problems.

    Checks: construction, info() serialisable, the declared convention against each task's (and the
    conversion used), output shapes and dtypes, finite values, bounds, binary gripper, reasoning text vs
    `reasons`, determinism under a seed, act_batch == act, and latency per call. Observations are synthetic,
    shaped like each task's (no simulator needed).

    Examples:

      vlascore adapter check scripted

      vlascore adapter check openvla -M path=/ckpt/openvla-7b -M unnorm_key=bridge_orig -s tabletop -t PickCube

      vlascore adapter check remote -M url=ws://gpu-box:8765 --max-latency-ms 500 --json > check.json
    """

    from vlascore.adapters import make_adapter
    from vlascore.adapters.check import check_adapter, summarise
    from vlascore.suites import SuiteError, load_suite

    try:
        spec = load_suite(suite)
        chosen = [spec.task(t) for t in split_ids(tasks) or [t.id for t in spec.tasks]]
    except SuiteError as exc:
        raise fail(str(exc)) from None
    options = parse_model_args(model_arg or [])
    reports = check_adapter(
        lambda: make_adapter(model, options),
        chosen,
        seed=seed,
        steps=steps,
        timed_calls=calls,
        max_latency_ms=max_latency_ms,
    )
    style = {"ok": "[green]  ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]", "skip": "[dim]skip[/]"}
    if as_json:
        print(json.dumps(summarise(reports), indent=2))
    else:
        for r in reports:
            console.print(f"[bold]{escape(r.adapter)}[/] on [bold]{escape(r.task)}[/]")
            for c in r.checks:
                console.print(f"  {style[c.status]}  {escape(c.name)}: {escape(c.detail)}", highlight=False)
    problems = [(r.task, c) for r in reports for c in r.problems]
    if problems:
        listing = "; ".join(f"{task}: {c.name}: {c.detail}" for task, c in problems)
        raise fail(f"{len(problems)} problem(s): {listing}", 1)
    if not as_json:
        console.print(f"[green]{escape(model)} passes the adapter checks on {len(reports)} task(s)[/]")


def doctor_cmd(
    suite: SuiteOpt = "tabletop",
    ray_address: RayAddressOpt = None,
    backend_arg: BackendArgOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check Python, dependencies and extras, the Vulkan device, rendering and simulator assets, torch's CUDA, Ray
    (and a Ray cluster, given its address); print fixes. Exits 1 when a required check fails.

    Examples:

      vlascore doctor                              # the embedded default (tabletop)

      vlascore doctor -s simpler-bridge            # ManiSkill 3 Bridge twins: are their asset packs downloaded?

      vlascore doctor -s simpler-google-vm         # SimplerEnv's own simulator: is it installed here?

      vlascore doctor --ray-address 10.0.0.5:6379  # does a Ray cluster answer there, and how large is it?

      vlascore doctor -s libero-object             # LIBERO: packages, asset folder, config, MuJoCo rendering (EGL)

      vlascore doctor -s libero-object -B gl=osmesa   # the same, rendering with OSMesa as `run -B gl=osmesa` would

      vlascore doctor --json > doctor.json          # every check as JSON (name, status, detail, fix), for bug reports
    """
    from vlascore.doctor import check_ray_cluster, run_checks
    from vlascore.suites import SuiteError, load_suite

    try:
        spec = load_suite(suite)
        env_ids = [t.env_id for t in spec.tasks] if spec.backend == "maniskill" else []
    except SuiteError as exc:
        raise fail(str(exc)) from None
    options = parse_model_args(backend_arg or [], "--backend-arg")
    unknown = sorted(set(options) - ({"gl", "wrist"} if spec.backend == "libero" else set()))
    if unknown:
        raise fail(f"doctor takes -B gl=... for LIBERO suites only; unknown: {', '.join(unknown)}")
    checks = run_checks(env_ids, spec.backend, options.get("gl"))
    checks += [check_ray_cluster(ray_address)] if ray_address else []
    failed = [c.name for c in checks if c.status == "fail"]
    if as_json:
        print(json.dumps({"suite": spec.name, "failed": failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        style = {"ok": "[green]  ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
        for c in checks:
            console.print(f"{style[c.status]}  [bold]{escape(c.name)}[/]: {escape(c.detail)}", highlight=False)
            if c.fix and c.status != "ok":
                console.print(f"{'':>6}fix: {escape(c.fix)}", highlight=False)
    if failed:
        raise fail(f"{len(failed)} check(s) failed: {', '.join(failed)}", 1)
    if not as_json:
        console.print("[green]all required checks passed[/]")
