"""`vlascore simreal`: SimplerEnv's MMRV / Pearson r, the bundled real-robot data, and the CLI.

Expected values: hand-worked examples and the outputs of SimplerEnv's own simpler_env/utils/metrics.py on its
bundled data (full float repr, so a faithful re-implementation matches to ~1e-12), and the values the paper's
figures print (3 decimals: 1.5e-3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from vlascore.cli import app
from vlascore.paths import data_dir
from vlascore.scoring import simreal
from vlascore.scoring.simreal import (
    COLUMN_KEYS,
    Protocol,
    RealSuccessData,
    SimRealError,
    SimRealResult,
    compare,
    load_real_success,
    mmrv,
    pearson,
    read_real_success,
)

EXACT = 1e-12  # against SimplerEnv's code (same formula, same epsilon)
FIGURE = 1.5e-3  # against the 3-decimal values printed in the paper's figures
WIDE = {"COLUMNS": "250"}


@pytest.fixture(scope="module")
def data() -> RealSuccessData:
    return load_real_success()


def invoke(*args: Any) -> Any:
    """`vlascore simreal ARGS`; with `--json PATH` among ARGS, the tables' result is returned and the command is
    run once more with --json, its stdout (JSON only) saved at PATH."""
    args_ = [str(a) for a in args]
    if "--json" in args_:
        at = args_.index("--json")
        path, args_ = Path(args_[at + 1]), args_[:at] + args_[at + 2 :]
        as_json = CliRunner().invoke(app, ["simreal", *args_, "--json"], env=WIDE)
        assert as_json.exit_code == 0, as_json.output
        path.write_text(as_json.stdout)
    return CliRunner().invoke(app, ["simreal", *args_], env=WIDE)


def write_yaml(path: Path, content: Any) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


# ------------------------------------------------------------------------------------------ the metrics


def test_mmrv_and_pearson_on_one_adjacent_swap() -> None:
    sim, real = [0.2, 0.5, 0.4], [0.1, 0.6, 0.7]
    assert mmrv(sim, real) == pytest.approx(1 / 15, abs=EXACT)  # MRV = [0, 0.1, 0.1]
    assert mmrv(real, sim) == pytest.approx(1 / 15, abs=EXACT)  # here the swapped weight is also 0.1
    assert pearson(sim, real) == pytest.approx(0.8824974134310279, abs=EXACT)  # SimplerEnv, with its epsilon
    assert pearson(sim, real) == pytest.approx(13 / 217**0.5, abs=1e-6)  # the exact r = 13 / sqrt(217)


def test_mmrv_is_asymmetric_and_charges_a_sim_tie_to_the_better_real_policy() -> None:
    sim, real = [0.3, 0.3, 0.8], [0.2, 0.5, 0.4]
    assert mmrv(sim, real) == pytest.approx(2 / 15, abs=EXACT)  # MRV = [0, 0.3, 0.1]: the tie costs policy 1
    assert mmrv(real, sim) == pytest.approx(1 / 3, abs=EXACT)  # weights now come from sim: MRV = [0, 0.5, 0.5]
    assert pearson(sim, real) == pytest.approx(0.1889822150760447, abs=EXACT)
    assert pearson(real, sim) == pearson(sim, real)
    assert pearson(sim, real) == pytest.approx(1 / (2 * 7**0.5), abs=1e-6)


def test_degenerate_inputs_behave_like_simplerenv() -> None:
    assert pearson([0, 0, 0], [0, 0, 0]) == 1.0
    assert pearson([0, 0, 0], [0, 0, 0.1]) == 0.0
    assert pearson([0.1] * 3, [0.2] * 3) == pytest.approx(1.1555579666323415e-25, abs=1e-30)  # not 1: float residue
    assert pearson([0.0, 0.0, 0.042], [0.0, 0.0, 0.125]) == pytest.approx(0.9999971428653062, abs=EXACT)
    for x in ([0.1, 0.5, 0.5, 0.9], [0.0, 0.0], [0.3, 0.2, 0.1]):
        assert mmrv(x, x) == 0.0
    with pytest.raises(ValueError, match="same length"):
        mmrv([0.1, 0.2], [0.1, 0.2, 0.3])


def test_rt1_robustness_figure_with_a_real_tie() -> None:
    # the paper's "RT-1 robustness" panels: deltas per distribution shift; the second has a tie in real
    real, sim = [-0.46, -0.39, -0.11, -0.08, -0.03], [-0.47, -0.14, -0.08, -0.06, -0.05]
    assert mmrv(sim, real) == 0.0
    assert pearson(sim, real) == pytest.approx(0.8263782533511188, abs=EXACT)
    real, sim = [-0.38, -0.17, -0.17, -0.08, -0.04], [-0.39, -0.19, -0.12, -0.06, -0.07]
    assert mmrv(sim, real) == pytest.approx(0.016, abs=EXACT)
    assert pearson(sim, real) == pytest.approx(0.9703739302411595, abs=EXACT)
    assert pearson(sim, real) == pytest.approx(0.970, abs=FIGURE)


# ------------------------------------------------------------------------------------------ reproduction

# SimplerEnv's metrics.py on its REAL_PERF / SIMPLER_PERF (tools/calc_metrics.py): (MMRV, r, MMRV with (real, sim))
SIMPLER_VM = {
    "pick_coke_can": (0.03133333333333336, 0.9754339621228817, 0.06183333333333335),
    "move_near": (0.11099999999999999, 0.8560966643118902, 0.0026666666666666666),
    "open_drawer": (0.0, 0.9831664917316731, 0.0),
    "close_drawer": (0.12333333333333335, 0.7712328181593621, 0.11333333333333333),
    "put_apple_in_drawer": (0.0, 0.96917180614324, 0.010833333333333334),
    "put_spoon_on_towel": (0.0, 0.8269440858336992, 0.0),
    "put_carrot_on_plate": (0.11133333333333333, 0.571367598454572, 0.009333333333333332),
    "stack_block": (0.0, 0.9999971428653062, 0.0),
    "put_eggplant_in_basket": (0.0, 0.9894145664016768, 0.0),
}
# the same functions on the combined drawer and the Bridge grasp sub-tasks
EXTRA_VM = {
    "drawer": (0.055499999999999994, 0.9151176639494092),
    "put_spoon_on_towel_grasp": (0.0, 0.7771433587573611),
    "put_carrot_on_plate_grasp": (0.0, 0.9953524231361346),
    "stack_block_grasp": (0.0, 0.9646535405170721),
    "put_eggplant_in_basket_grasp": (0.0, 0.9946015794345869),
}
# printed to 6 decimals in the research notes (no published counterpart)
ORIENTATIONS_VM = {
    "pick_coke_can_horizontal": (0.026667, 0.981496),
    "pick_coke_can_vertical": (0.026667, 0.963704),
    "pick_coke_can_standing": (0.053333, 0.942131),
}
SIMPLER_VA = {
    "pick_coke_can": (0.084667, 0.959805),
    "pick_coke_can_horizontal": (0.093333, 0.947036),
    "pick_coke_can_vertical": (0.133333, 0.936716),
    "pick_coke_can_standing": (0.140000, 0.932799),
    "move_near": (0.111000, 0.886195),
    "open_drawer": (0.302833, 0.630016),
    "close_drawer": (0.321000, 0.613030),
    "drawer": (0.321083, 0.736175),
    "put_apple_in_drawer": (0.148000, 0.237364),
}


def test_reference_data_reproduces_simplerenv_exactly(data: RealSuccessData) -> None:
    result = compare(data.reference_sims("vm"), "vm", data=data)
    got = {t.task: t for t in result.tasks}
    assert set(got) == set(SIMPLER_VM) | set(EXTRA_VM) | set(ORIENTATIONS_VM)
    for task, (m, r, *_) in {**SIMPLER_VM, **EXTRA_VM}.items():
        assert got[task].mmrv == pytest.approx(m, abs=EXACT), task
        assert got[task].pearson == pytest.approx(r, abs=EXACT), task
    for task, (m, r) in ORIENTATIONS_VM.items():
        assert (got[task].mmrv, got[task].pearson) == pytest.approx((m, r), abs=5e-7), task
    # each Google task over SimplerEnv's 6 policies, each Bridge task over its 3
    assert {len(t.rates) for t in result.tasks if t.column and t.column.startswith("google")} == {6}
    assert {len(t.rates) for t in result.tasks if t.metric == "grasp" or (t.column or "").startswith("bridge/")} == {3}
    assert result.skipped == []


def test_swapping_the_arguments_changes_mmrv_as_simplerenv_readme_order_would(data: RealSuccessData) -> None:
    real = data.real_rates()
    sims = data.reference_sims("vm")
    for task, (_, _, swapped) in SIMPLER_VM.items():
        policies = [p for p in sims if task in sims[p] and p in real[task]]
        s, r = [sims[p][task] for p in policies], [real[task][p] for p in policies]
        assert mmrv(r, s) == pytest.approx(swapped, abs=EXACT), task


def test_reference_data_reproduces_the_papers_figures(data: RealSuccessData) -> None:
    result = compare(data.reference_sims("vm"), "vm", data=data)
    with_paper = {t.task: t for t in result.tasks if t.paper}
    assert set(with_paper) == {"pick_coke_can", "move_near", "drawer", "put_apple_in_drawer"}
    for t in with_paper.values():
        assert t.paper is not None
        assert t.mmrv == pytest.approx(t.paper.mmrv, abs=FIGURE), t.task
        assert t.pearson == pytest.approx(t.paper.pearson, abs=FIGURE), t.task
    (bridge,) = result.summaries
    assert bridge.id == "bridge" and len(bridge.tasks) == 8 and bridge.paper is not None
    assert (bridge.mmrv, bridge.pearson) == pytest.approx((0.013916666666666666, 0.889934286925051), abs=EXACT)
    assert (bridge.mmrv, bridge.pearson) == pytest.approx((bridge.paper.mmrv, bridge.paper.pearson), abs=FIGURE)


def test_variant_aggregation_reference(data: RealSuccessData) -> None:
    result = compare(data.reference_sims("va"), "va", data=data)
    got = {t.task: (t.mmrv, t.pearson) for t in result.tasks}
    assert set(got) == set(SIMPLER_VA)
    for task, expected in SIMPLER_VA.items():
        assert got[task] == pytest.approx(expected, abs=5e-7), task
    assert all(t.paper is None for t in result.tasks)  # the paper's figures are Visual Matching
    assert {s.task for s in result.skipped} == {t.id for t in data.tasks if t.robot == "widowx"}
    assert all(s.reason == "not part of Variant Aggregation" for s in result.skipped)
    assert result.summaries == []  # Bridge is Visual Matching only


# ------------------------------------------------------------------------------------------ the data file


def test_data_file_is_valid_and_traceable(data: RealSuccessData) -> None:
    assert data.schema_version == 1
    assert data.citation.arxiv == "2405.05941" and "CoRL 2024" in data.citation.line()
    assert data.sources["upstream"].commit == "4ab7178e83e84ee06894034ec6dbf9e7aad1e882"
    assert list(data.policies) == [
        "rt-2-x",
        "rt-1-converged",
        "rt-1-15pct",
        "rt-1-x",
        "rt-1-begin",
        "octo-base",
        "octo-small",
    ]
    real = data.real_rates()
    for t in data.tasks:
        assert t.trials > 0
        assert len(real[t.id]) >= 3, t.id
        rates = [*real[t.id].values(), *(r for s in t.simpler.values() for r in s.rates.values())]
        assert all(0.0 <= r <= 1.0 for r in rates), t.id
        assert set(real[t.id]) <= set(data.policies)
        for protocol, key in t.columns.items():
            assert key in COLUMN_KEYS and key.startswith(simreal.COLUMN_PREFIXES[protocol]), (t.id, key)
        if t.robot == "google_robot":
            assert set(t.columns) == {"vm", "va"} and set(t.simpler) == {"vm", "va"}
            assert set(t.simpler["vm"].rates) == set(real[t.id]), t.id
        else:
            assert "va" not in t.columns and set(t.simpler) == {"vm"}
    mapped = {k for t in data.tasks for k in t.columns.values()}
    assert mapped == COLUMN_KEYS  # every SimplerEnv column has its real task
    assert {t.id for t in data.tasks if t.metric == "grasp"} == {f"{t}_grasp" for t in simreal._BRIDGE_COLUMNS}
    assert all(not t.columns for t in data.tasks if t.metric == "grasp")  # no vlascore column records a grasp rate
    text = (data_dir("tasks") / simreal.REAL_SUCCESS_FILE).read_text()
    assert "openvla-7b:" not in text.lower()  # the unmerged OpenVLA rates are not bundled


def test_drawer_real_rate_is_the_mean_of_open_and_close(data: RealSuccessData) -> None:
    real = data.real_rates()
    assert real["drawer"]["rt-1-converged"] == pytest.approx((0.815 + 0.926) / 2)
    assert set(real["drawer"]) == set(real["open_drawer"])
    # also for your own policies; a rate you give for drawer itself wins
    mine = data.real_rates({"mine": {"open_drawer": 0.2, "close_drawer": 0.6}, "half": {"open_drawer": 0.2}})
    assert mine["drawer"]["mine"] == pytest.approx(0.4) and "half" not in mine["drawer"]
    assert data.real_rates({"mine": {"open_drawer": 0.2, "close_drawer": 0.6, "drawer": 0.5}})["drawer"]["mine"] == 0.5


def test_built_in_simpler_suites_produce_every_column_the_data_maps() -> None:
    """The interface with the suites: each SimplerEnv suite present produces all of its key prefix's column keys (it
    may produce more, e.g. camera variants SimplerEnv's metrics leave out)."""
    from vlascore.suites import builtin_suite_paths, load_suite

    checked = 0
    for name in builtin_suite_paths():
        suite = load_suite(name)
        prefix = suite.key_prefix or suite.name
        if prefix in ("google_vm", "google_va", "bridge", "bridge_ms3"):  # not suites including a few columns
            checked += 1
            keys = {suite.column_key(c) for c in suite.result_columns}
            expected = {k for k in COLUMN_KEYS if k.startswith(f"{prefix}/")}
            assert expected <= keys, (name, sorted(expected - keys))
    if not checked:
        pytest.skip("no SimplerEnv suite is bundled yet")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["tasks"][0]["real"]["rates"].update({"rt-2-x": 1.5}), "less than or equal to 1"),
        (lambda d: d["tasks"][0]["columns"].update({"vm": "google_vm/pick_coke"}), "not a known vm column key"),
        (lambda d: d["tasks"][0]["columns"].update({"va": "google_vm/move_near"}), "not a known va column key"),
        (lambda d: d["tasks"][0]["real"]["rates"].update({"openvla-7b": 0.64}), "unknown policies openvla-7b"),
        (lambda d: d["tasks"][0]["real"].update({"source": "somewhere: x"}), "must start with a sources key"),
        (lambda d: d["summaries"][0]["mean_of"].append("nope"), "unknown tasks nope"),
    ],
)
def test_invalid_data_is_refused(tmp_path: Path, edit: Any, message: str) -> None:
    raw = yaml.safe_load((data_dir("tasks") / simreal.REAL_SUCCESS_FILE).read_text())
    edit(raw)
    with pytest.raises(SimRealError, match=message):
        read_real_success(write_yaml(tmp_path / "bad.yaml", raw))


# ------------------------------------------------------------------------------------------ compare()


def test_compare_refuses_fewer_than_two_policies_and_unknown_ones(data: RealSuccessData) -> None:
    with pytest.raises(SimRealError, match="at least 2"):
        compare({"rt-1-x": {"move_near": 0.3}}, "vm", data=data)
    with pytest.raises(SimRealError, match="no real-robot rates for policy rt-1-conv.*'rt-1-converged'"):
        compare({"rt-1-x": {"move_near": 0.3}, "rt-1-conv": {"move_near": 0.4}}, "vm", data=data)


def test_compare_says_which_policies_and_tasks_were_left_out(data: RealSuccessData) -> None:
    sims = {"rt-1-x": {"move_near": 0.3, "drawer": 0.5}, "octo-base": {"move_near": 0.1}, "rt-1-begin": {}}
    result = compare(sims, "vm", data=data)
    (t,) = result.tasks
    assert t.task == "move_near" and [r.policy for r in t.rates] == ["rt-1-x", "octo-base"]
    assert t.excluded == {"rt-1-begin": "no sim rate (column google_vm/move_near)"}
    assert t.paper is None  # not the paper's policy set
    skipped = {s.task: s for s in result.skipped}
    assert "1 policy(ies)" in skipped["drawer"].reason and "octo-base" in skipped["drawer"].excluded
    assert "grasp rate" in skipped["stack_block_grasp"].reason
    assert "not compared: put_spoon_on_towel_grasp" in result.skipped_summaries["bridge"]
    with pytest.raises(SimRealError, match="no task has sim and real rates"):
        compare({"rt-1-x": {"drawer": 0.5}, "octo-base": {"move_near": 0.1}}, "vm", data=data)


def test_compare_warns_about_constant_rates_and_uses_extra_real_rates(data: RealSuccessData) -> None:
    sims = {"mine": {"stack_block": 0.0}, "rt-1-x": {"stack_block": 0.0}, "octo-base": {"stack_block": 0.0}}
    result = compare(sims, "vm", data=data, real_extra={"mine": {"stack_block": 0.5}}, tasks=["stack_block"])
    (t,) = result.tasks
    assert t.pearson == 0.0 and "undefined" in t.warnings[0]
    assert result.real_sources["mine"] == "--real file"
    assert result.real_sources["rt-1-x"].startswith("bundled")


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_reference_prints_the_papers_values_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "simreal.json"
    res = invoke("--reference", "--json", out)
    assert res.exit_code == 0, res.output
    for text in (
        "0.031 / 0.976",
        "0.111 / 0.855",
        "0.055 / 0.915",
        "0.000 / 0.969",
        "0.014 / 0.890",
        "google_vm/pick_coke_can",
        "Visual Matching",
        "arXiv:2405.05941",
    ):
        assert text in res.output, text
    result = SimRealResult.model_validate_json(out.read_text())
    assert result.protocol == "vm" and len(result.tasks) == 17
    move = next(t for t in result.tasks if t.task == "move_near")
    assert move.mmrv == pytest.approx(SIMPLER_VM["move_near"][0], abs=EXACT)
    va = invoke("--reference", "--protocol", "va", "--tasks", "move_near,drawer")
    assert va.exit_code == 0, va.output
    assert "google_va/drawer" in va.output and "0.321" in va.output


def test_cli_list_shows_policies_rates_and_citation() -> None:
    res = invoke("--list")
    assert res.exit_code == 0, res.output
    for text in (
        "Evaluating Real-World Robot Manipulation Policies in Simulation",
        "CoRL 2024",
        "4ab7178",
        "rt_1_tf_trained_for_000400120",
        "google_va/move_near",
        "0.733",
        "0.871~",
        "octo-small",
    ):
        assert text in res.output, text


def _reference_file(data: RealSuccessData, tmp_path: Path, policy: str, protocol: Protocol = "vm") -> Path:
    """A sim-rate file {column key: rate} holding SimplerEnv's numbers for `policy`."""
    sims = data.reference_sims(protocol)
    columns = {
        t.columns[protocol]: sims[policy][t.id] for t in data.tasks if protocol in t.columns and t.id in sims[policy]
    }
    return write_yaml(tmp_path / f"{policy}.yaml", columns)


def test_cli_on_sim_rate_files_matches_the_direct_computation(data: RealSuccessData, tmp_path: Path) -> None:
    policies = ["rt-1-converged", "rt-1-x", "rt-1-begin", "octo-base"]
    out = tmp_path / "r.json"
    res = invoke(*[f"{p}={_reference_file(data, tmp_path, p)}" for p in policies], "--json", out)
    assert res.exit_code == 0, res.output
    result = SimRealResult.model_validate_json(out.read_text())
    real, sims = data.real_rates(), data.reference_sims("vm")
    for t in result.tasks:
        assert [r.policy for r in t.rates] == [p for p in policies if t.task in sims[p]]
        s, r = (
            [sims[p][t.task] for p in policies if t.task in sims[p]],
            [real[t.task][p] for p in policies if t.task in sims[p]],
        )
        assert (t.mmrv, t.pearson) == pytest.approx((mmrv(s, r), pearson(s, r)), abs=EXACT)
        assert t.paper is None
        assert t.simpler is not None and (t.simpler.mmrv, t.simpler.pearson) == (t.mmrv, t.pearson)  # same numbers
    covered = {t.id for t in data.tasks if t.columns and sum(t.id in sims[p] for p in policies) >= 2}
    assert {t.task for t in result.tasks} == covered and "put_spoon_on_towel" in covered  # rt-1-x, octo-base
    assert "stack_block_grasp" in {s.task for s in result.skipped}
    assert "sim-rate file" in res.output and "not compared" in res.output


def test_cli_with_own_real_rates_and_reference(data: RealSuccessData, tmp_path: Path) -> None:
    mine = write_yaml(tmp_path / "mine.yaml", {"google_vm/move_near": 0.9, "google_vm/open_drawer": 0.1})
    real = write_yaml(tmp_path / "real.yaml", {"mine": {"move_near": 0.95, "google_vm/open_drawer": 0.05}})
    out = tmp_path / "r.json"
    res = invoke("--reference", f"mine={mine}", "--real", real, "--tasks", "move_near,open_drawer", "--json", out)
    assert res.exit_code == 0, res.output
    result = SimRealResult.model_validate_json(out.read_text())
    for t in result.tasks:
        assert "mine" in {r.policy for r in t.rates} and len(t.rates) == 7
        assert t.simpler is None and t.paper is None  # SimplerEnv has no sim rate of "mine"
    assert result.real_sources["mine"] == str(real)
    assert "SimplerEnv's Visual Matching rates" in result.sim_sources["rt-1-x"]


def clean_failure(res: Any, *fragments: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in res.output, (f, res.output)


def test_cli_errors(data: RealSuccessData, tmp_path: Path) -> None:
    one = _reference_file(data, tmp_path, "rt-1-x")
    two = _reference_file(data, tmp_path, "octo-base")
    clean_failure(invoke(), "--reference")
    clean_failure(invoke(f"rt-1-x={one}"), "at least 2")
    clean_failure(invoke(f"rt-1-x={one}", f"rt1-x={two}"), "no real-robot rates for policy rt1-x", "'rt-1-x'")
    clean_failure(invoke(f"rt-1-x={one}", f"rt-1-x={two}"), "given twice")
    clean_failure(invoke(f"rt-1-x={one}", "octo-base"), "POLICY=RUN_DIR")
    clean_failure(invoke(f"rt-1-x={one}", f"octo-base={tmp_path / 'nope'}"), "neither a run directory nor a file")
    clean_failure(invoke("--reference", "--protocol", "xx"), "vm, va or ms3")
    clean_failure(invoke("--reference", "--tasks", "move_nea"), "unknown task 'move_nea'", "'move_near'")
    typo = write_yaml(tmp_path / "typo.yaml", {"google_vm/move_nea": 0.3})
    clean_failure(invoke(f"rt-1-x={one}", f"octo-base={typo}"), "unknown column key 'google_vm/move_nea'")
    percent = write_yaml(tmp_path / "percent.yaml", {"google_vm/move_near": 31.7})
    clean_failure(invoke(f"rt-1-x={one}", f"octo-base={percent}"), "not a success rate in 0..1")
    # a policy whose rates are all of the other protocol: a missing column, with the fix
    va = _reference_file(data, tmp_path, "octo-base", "va")
    clean_failure(invoke(f"rt-1-x={one}", f"octo-base={va}"), "no Visual Matching SimplerEnv column", "--protocol va")
    bad_real = write_yaml(tmp_path / "real.yaml", {"mine": {"move_nearly": 0.3}})
    clean_failure(invoke("--reference", "--real", bad_real), "unknown task 'move_nearly'")


# ------------------------------------------------------------------------------------------ run directories


def _run_as(tmp_path: Path, name: str, model: str, seeds: list[int]) -> Path:
    """A real toy run whose suite names its column like SimplerEnv's move-near column (key google_vm/move_near)."""
    from conftest import small_suite

    from vlascore import runner
    from vlascore.suites import Suite, load_suite

    toy = small_suite(load_suite("toy"), ["ToyPick"], seeds, max_steps=20)
    spec = Suite.model_validate(
        {
            **toy.model_dump(),
            "name": "toy-as-simpler",
            "key_prefix": "google_vm",
            "columns": [{"id": "move_near", "tasks": ["ToyPick"]}],
        }
    )
    runner.run(model=model, suite=spec, out=tmp_path / name)
    return tmp_path / name


def test_cli_on_run_directories(tmp_path: Path) -> None:
    """Real run directories: their scored result columns are the sim rates (other columns are ignored)."""
    from vlascore.scoring import score_run
    from vlascore.store import load_run

    expert, rand = _run_as(tmp_path, "expert", "toy-expert", [0, 1, 2]), _run_as(tmp_path, "random", "random", [0, 1])
    rates = {run: simreal.sim_rates_from_run(run) for run in (expert, rand)}
    for run, got in rates.items():
        scored = score_run(load_run(run))
        assert got == {"google_vm/move_near": scored.columns[0].success_rate}
    out = tmp_path / "r.json"
    res = invoke(f"rt-1-x={expert}", f"octo-base={rand}", "--json", out)
    assert res.exit_code == 0, res.output
    result = SimRealResult.model_validate_json(out.read_text())
    (t,) = result.tasks
    assert t.task == "move_near" and t.column == "google_vm/move_near"
    assert {r.policy: r.sim for r in t.rates} == {
        "rt-1-x": rates[expert]["google_vm/move_near"],
        "octo-base": rates[rand]["google_vm/move_near"],
    }
    assert {r.policy: r.real for r in t.rates} == {"rt-1-x": 0.45, "octo-base": 0.35}
    assert "vlascore run, 1 column(s)" in result.sim_sources["rt-1-x"]
    # a run of a suite without SimplerEnv columns: refused, naming its columns
    from vlascore import runner
    from vlascore.suites import load_suite

    runner.run(model="random", suite=load_suite("toy"), out=tmp_path / "toy", episodes=1)
    clean_failure(
        invoke(f"rt-1-x={expert}", f"octo-base={tmp_path / 'toy'}"),
        "no Visual Matching SimplerEnv column (toy/ToyPick)",
        "simpler-google-vm",
    )
    clean_failure(invoke(f"rt-1-x={expert}", f"octo-base={tmp_path}"), "error:")  # a folder that is not a run


def test_cli_with_run_directories_and_files_mixed(
    data: RealSuccessData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several SimplerEnv columns per run (sim_rates_from_run stubbed with SimplerEnv's own rates)."""
    sims = data.reference_sims("vm")
    runs: dict[Path, dict[str, float]] = {}
    for policy in ("rt-1-converged", "rt-1-15pct"):
        run = tmp_path / policy
        run.mkdir()
        runs[run] = {t.columns["vm"]: sims[policy][t.id] for t in data.tasks if t.robot == "google_robot"}
        runs[run]["toy/ToyPick"] = 1.0
    monkeypatch.setattr(simreal, "sim_rates_from_run", lambda path: runs[Path(path)])
    out = tmp_path / "r.json"
    res = invoke(
        *[f"{p.name}={p}" for p in runs],
        f"rt-1-x={_reference_file(data, tmp_path, 'rt-1-x')}",
        "--tasks",
        "pick_coke_can,drawer",
        "--json",
        out,
    )
    assert res.exit_code == 0, res.output
    result = SimRealResult.model_validate_json(out.read_text())
    assert [t.task for t in result.tasks] == ["pick_coke_can", "drawer"]
    assert all(len(t.rates) == 3 for t in result.tasks)
    assert "vlascore run, 9 column(s)" in result.sim_sources["rt-1-15pct"]
    assert "sim-rate file" in result.sim_sources["rt-1-x"]


def test_json_result_round_trips(data: RealSuccessData) -> None:
    result = compare(data.reference_sims("vm"), "vm", data=data, tasks=["move_near"])
    again = SimRealResult.model_validate(json.loads(result.model_dump_json()))
    assert again == result and again.schema_version == simreal.SIMREAL_SCHEMA_VERSION


def test_the_maniskill3_twins_compare_under_their_own_protocol(data: RealSuccessData, tmp_path: Path) -> None:
    rates = {"rt-1-x": [0.1, 0.0, 0.0, 0.05], "octo-base": [0.3, 0.2, 0.0, 0.4]}
    tasks = ["put_spoon_on_towel", "put_carrot_on_plate", "stack_block", "put_eggplant_in_basket"]
    files = []
    for policy, values in rates.items():
        path = tmp_path / f"{policy}.yaml"
        path.write_text(yaml.safe_dump({f"bridge_ms3/{t}": v for t, v in zip(tasks, values, strict=True)}))
        files.append(f"{policy}={path}")
    out = tmp_path / "ms3.json"
    res = invoke(*files, "-p", "ms3", "--json", out)
    assert res.exit_code == 0, res.output
    result = SimRealResult.model_validate_json(out.read_text())
    real = data.real_rates()
    assert {t.task for t in result.tasks} == set(tasks)
    carrot = next(t for t in result.tasks if t.task == "put_carrot_on_plate")
    sim = [rates[r.policy][1] for r in carrot.rates]
    assert carrot.column == "bridge_ms3/put_carrot_on_plate" and carrot.simpler is None
    assert (carrot.mmrv, carrot.pearson) == pytest.approx(
        (
            mmrv(sim, [real["put_carrot_on_plate"][r.policy] for r in carrot.rates]),
            pearson(sim, [real["put_carrot_on_plate"][r.policy] for r in carrot.rates]),
        ),
        abs=EXACT,
    )
    wrong = invoke(*files)  # Visual Matching: these are not its columns
    assert wrong.exit_code == 2 and "use --protocol ms3" in " ".join(wrong.output.split())
