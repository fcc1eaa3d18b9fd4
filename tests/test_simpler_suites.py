"""The SimplerEnv suites' episode grids against SimplerEnv's evaluation scripts (simpler-env/SimplerEnv @ 4ab7178,
scripts/rt1_*_{visual_matching,variant_agg}.sh, rt1x_bridge.sh), and the grid machinery behind them.

Counts are worked out from the scripts' loops in the comments; each test also checks a few cells' exact settings.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vlascore.episode_grid import env_key, euler_sxyz_to_quat, rpy_quat
from vlascore.suites import Suite, SuiteError, load_suite, load_suite_file

GOOGLE_CONTROL = (
    "arm_pd_ee_delta_pose_align_interpolate_by_planner_gripper_pd_joint_target_delta_pos_interpolate_by_planner"
)
URDFS = {
    "default",
    "recolor_tabletop_visual_matching_1",
    "recolor_tabletop_visual_matching_2",
    "recolor_cabinet_visual_matching_1",
}


def cells(suite: Suite, task: str) -> list:
    t = suite.task(task)
    return [t.cell(i) for i in t.seeds]


def labels(suite: Suite, task: str, key: str) -> Counter:
    return Counter(c.labels[key] for c in cells(suite, task))


@pytest.fixture(scope="module")
def vm() -> Suite:
    return load_suite("simpler-google-vm")


@pytest.fixture(scope="module")
def va() -> Suite:
    return load_suite("simpler-google-va")


def test_pick_coke_can_vm_is_3_orientations_x_4_urdfs_x_25_positions(vm: Suite) -> None:
    tasks = ["pick_coke_can_horizontal", "pick_coke_can_vertical", "pick_coke_can_standing"]
    assert sum(vm.task(t).episode_count for t in tasks) == 3 * 4 * 25 == 300
    flags = {
        "pick_coke_can_horizontal": "lr_switch",
        "pick_coke_can_vertical": "laid_vertically",
        "pick_coke_can_standing": "upright",
    }
    for t in tasks:
        task = vm.task(t)
        assert (task.max_steps, task.sim_freq, task.control_freq, task.success_mode) == (80, 513, 3, "final")
        assert task.control_mode == GOOGLE_CONTROL and task.camera == "overhead_camera"
        assert task.mean_over == ["urdf"]
        assert labels(vm, t, "urdf") == Counter({u: 25 for u in URDFS})
        cs = cells(vm, t)
        assert all(c.make[flags[t]] is True and c.env_id == "GraspSingleOpenedCokeCanInScene-v0" for c in cs)
        assert {c.make["rgb_overlay_path"] for c in cs} == {"real_inpainting/google_coke_can_real_eval_1.png"}
        # --obj-init-x -0.35 -0.12 5 --obj-init-y -0.02 0.42 5: np.linspace, x outer
        xy = [tuple(c.reset["obj_init_options"]["init_xy"]) for c in cs[:25]]
        assert xy == [(x, y) for x in np.linspace(-0.35, -0.12, 5) for y in np.linspace(-0.02, 0.42, 5)]
        assert {tuple(c.reset["robot_init_options"]["init_xy"]) for c in cs} == {(0.35, 0.20)}
        assert {tuple(c.reset["robot_init_options"]["init_rot_quat"]) for c in cs} == {(0.0, 0.0, 0.0, 1.0)}
    first = vm.task("pick_coke_can_horizontal").cell(0)
    assert first.make["urdf_version"] is None and first.make["scene_name"] == "google_pick_coke_can_1_v4"


def test_move_near_vm_is_4_urdfs_x_60_episodes_with_the_scripts_robot_pose(vm: Suite) -> None:
    t = vm.task("move_near")
    assert t.episode_count == 4 * 60 == 240 and t.env_id == "MoveNearGoogleBakedTexInScene-v0"
    cs = cells(vm, "move_near")
    assert [c.reset["obj_init_options"]["episode_id"] for c in cs[:60]] == list(range(60))
    quat = cs[0].reset["robot_init_options"]["init_rot_quat"]
    # --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 -0.09 -0.09 1
    assert np.allclose(quat, [np.sin(0.045), 0, 0, np.cos(0.045)])
    assert cs[0].reset["robot_init_options"]["init_xy"] == [0.35, 0.21]


def test_drawer_vm_is_4_urdfs_x_3_drawers_x_9_overlay_poses_per_direction(vm: Suite) -> None:
    for task, verb in (("open_drawer", "Open"), ("close_drawer", "Close")):
        t = vm.task(task)
        assert t.episode_count == 4 * 3 * 9 == 108 and t.max_steps == 113 and t.mean_over == ["drawer", "urdf"]
        cs = cells(vm, task)
        assert Counter(c.env_id for c in cs) == Counter(
            {f"{verb}{d}DrawerCustomInScene-v0": 36 for d in ("Top", "Middle", "Bottom")}
        )
        assert all(c.make["shader_dir"] == "rt" and c.make["station_name"] == "mk_station_recolor" for c in cs)
        assert all(c.make["light_mode"] == "simple" and c.make["scene_name"] == "dummy_drawer" for c in cs)
        a0 = next(c for c in cs if c.labels["robot_pose"] == "a0")
        assert a0.reset["robot_init_options"]["init_xy"] == [0.644, -0.179]
        assert a0.make["rgb_overlay_path"] == "real_inpainting/open_drawer_a0.png"
        assert np.allclose(a0.reset["robot_init_options"]["init_rot_quat"], [np.sin(0.015), 0, 0, np.cos(0.015)])
        assert cs[0].labels["urdf"] == "recolor_cabinet_visual_matching_1"  # the drawer scripts' URDF order
    assert vm.task("put_apple_in_drawer").episode_count == 4 * 3 * 9 == 108


def test_va_grids_match_the_variant_aggregation_scripts(va: Suite) -> None:
    coke = ["pick_coke_can_horizontal", "pick_coke_can_vertical", "pick_coke_can_standing"]
    # 9 variants the metric uses (base, 2 table textures, 2 distractor sets, 2 backgrounds, 2 lightings) x 25
    assert sum(va.task(t).episode_count for t in coke) == 3 * 9 * 25 == 675
    assert labels(va, "pick_coke_can_horizontal", "variant") == Counter(
        {
            v: 25
            for v in (
                "base",
                "table_texture_1",
                "table_texture_2",
                "distractors",
                "more_distractors",
                "background_1",
                "background_2",
                "darker_lighting",
                "brighter_lighting",
            )
        }
    )
    more = next(c for c in cells(va, "pick_coke_can_standing") if c.labels["variant"] == "more_distractors")
    assert more.env_id == "GraspSingleOpenedCokeCanDistractorInScene-v0" and more.make["distractor_config"] == "more"
    assert more.make["upright"] is True and "rgb_overlay_path" not in more.make and "urdf_version" not in more.make
    # 8 variants x 60 episodes; drawers 7 variants x 3 drawers x 3 x 3 robot positions; apple 7 x 3 x 9
    assert va.task("move_near").episode_count == 8 * 60 == 480
    assert va.task("open_drawer").episode_count == va.task("close_drawer").episode_count == 7 * 3 * 9 == 189
    assert va.task("put_apple_in_drawer").episode_count == 7 * 3 * 9 == 189
    xy = {tuple(c.reset["robot_init_options"]["init_xy"]) for c in cells(va, "open_drawer")}
    assert xy == {(x, y) for x in (0.65, 0.75, 0.85) for y in (-0.2, 0.0, 0.2)}
    # camera orientations run apart and stay out of the averages, as SimplerEnv's metric script leaves them out
    orientations = ("horizontal", "vertical", "standing")
    assert sum(va.task(f"pick_coke_can_camera_{o}").episode_count for o in orientations) == 3 * 2 * 25
    assert va.task("move_near_camera").episode_count == 2 * 60
    camera_cols = [c for c in va.result_columns if "camera" in c.id]
    assert camera_cols and not any(c.in_mean for c in camera_cols)
    assert all(not set(a.columns) & {c.id for c in camera_cols} for a in va.averages)


def test_bridge_suites_run_24_trials_per_paper_task() -> None:
    ms3, ms2 = load_suite("simpler-bridge"), load_suite("simpler-widowx")
    for suite in (ms3, ms2):
        for t in ("put_spoon_on_towel", "put_carrot_on_plate", "stack_block"):
            task = suite.task(t)
            assert (task.episode_count, task.max_steps, task.sim_freq, task.control_freq) == (24, 60, 500, 5)
            assert task.success_mode == "final" and task.camera == "3rd_view_camera"
            assert task.control_mode == "arm_pd_ee_target_delta_pose_align2_gripper_pd_joint_pos"
        assert suite.task("put_eggplant_in_basket").max_steps == 120
    assert [ms3.task("put_carrot_on_plate").cell(i).reset for i in (0, 23)] == [{"episode_id": 0}, {"episode_id": 23}]
    assert ms3.task("put_eggplant_in_basket").episode_count == 64  # the ManiSkill 3 twin's 8 x 8 configurations
    assert ms2.task("put_eggplant_in_basket").episode_count == 24
    spoon = ms2.task("put_spoon_on_towel").cell(5)
    assert spoon.reset == {
        "robot_init_options": {"init_xy": [0.147, 0.028], "init_rot_quat": [0.0, 0.0, 0.0, 1.0]},
        "obj_init_options": {"episode_id": 5},
    }
    assert spoon.make["rgb_overlay_path"] == "real_inpainting/bridge_real_eval_1.png"
    assert [ms3.column_key(c) for c in ms3.result_columns][0] == "bridge_ms3/put_spoon_on_towel"
    assert ms2.column_key(ms2.result_columns[0]) == "bridge/put_spoon_on_towel"


def test_the_dualvla_suite_includes_the_other_suites_tasks_unchanged(vm: Suite, va: Suite) -> None:
    d = load_suite("simpler-dualvla")
    assert sum(t.episode_count for t in d.tasks) == (300 + 240 + 216) + (675 + 480 + 378) + 3 * 24
    assert d.task("vm_move_near").model_dump(exclude={"id"}) == vm.task("move_near").model_dump(exclude={"id"})
    assert d.task("va_open_drawer").grid == va.task("open_drawer").grid
    nine = next(a for a in d.averages if a.id == "simpler_9")
    keys = [d.column_key(next(c for c in d.result_columns if c.id == col)) for col in nine.columns]
    assert keys == [
        "google_vm/pick_coke_can",
        "google_vm/move_near",
        "google_vm/drawer",
        "google_va/pick_coke_can",
        "google_va/move_near",
        "google_va/drawer",
        "bridge/put_spoon_on_towel",
        "bridge/put_carrot_on_plate",
        "bridge/stack_block",
    ]
    assert sorted(c.id for c in d.result_columns if c.in_mean) == sorted(nine.columns)


def test_simplerenv_robot_rotation_formula() -> None:
    # transforms3d euler2quat(r, p, y) (sxyz) and (Pose(q=euler2quat(...)) * Pose(q=center)).q
    assert np.allclose(euler_sxyz_to_quat(0.3, 0, 0), [np.cos(0.15), np.sin(0.15), 0, 0])
    assert np.allclose(euler_sxyz_to_quat(0, 0, np.pi), [0, 0, 0, 1], atol=1e-12)
    q = rpy_quat([0.1, -0.2, 0.3], [0, 0, 0, 1])
    assert np.isclose(np.linalg.norm(q), 1.0)
    assert np.allclose(rpy_quat([0, 0, -0.09], [0, 0, 0, 1]), [0.044985, 0, 0, 0.998988], atol=1e-6)


def test_old_suites_keep_their_fingerprints_and_new_fields_change_them() -> None:
    # the fingerprints runs of the tabletop and toy suites were made with before grids existed
    assert load_suite("tabletop").fingerprint == "256a8e50a36d9adf"
    assert load_suite("toy").fingerprint == "11c8c78bb527d05e"
    vm = load_suite("simpler-google-vm")
    assert vm.with_success_mode("ever").fingerprint != vm.fingerprint
    assert vm.with_success_mode("final").fingerprint == vm.fingerprint


BAD_GRIDS = [
    ({"axes": [{"name": "a", "xy": {"key": "k", "x": [0, 1]}}]}, "must be [start, stop, count]"),
    ({"axes": [{"name": "a"}]}, "needs exactly one of values, xy, rpy, range"),
    ({"axes": [{"name": "a", "range": {"count": 3}}]}, "needs a mapping with `key`"),
    ({"axes": [{"name": "a", "range": {"key": "k", "count": 0}}]}, "positive integer"),
    ({"axes": [{"name": "a", "xy": {"key": "k", "x": [0, 1, 2], "y": [0, 1, 2], "z": 1}}]}, "unknown `xy` keys z"),
]


@pytest.mark.parametrize(("grid", "message"), BAD_GRIDS)
def test_bad_grids_are_refused_with_the_reason(tmp_path: Path, grid: dict, message: str) -> None:
    import yaml

    path = tmp_path / "s.yaml"
    task = {"id": "t", "env_id": "ToyPick-v0", "instruction": "x", "grid": grid}
    path.write_text(yaml.safe_dump({"name": "s", "protocol_version": "1", "backend": "toy", "tasks": [task]}))
    with pytest.raises(SuiteError, match="task 't'.*" + message.replace("[", r"\[").replace("]", r"\]")):
        load_suite_file(path)


def test_grid_cells_mix_blocks_axes_and_overrides(tmp_path: Path) -> None:
    import yaml

    spec = {
        "name": "s",
        "protocol_version": "1",
        "backend": "toy",
        "tasks": [
            {
                "id": "t",
                "env_id": "Base-v0",
                "instruction": "x",
                "env_kwargs": {"a": 1, "nested": {"p": 1}},
                "grid": [
                    {
                        "variant": "one",
                        "reset": {"opt": {"u": 1}},
                        "axes": [
                            {
                                "name": "k",
                                "values": [{"label": "k0", "make": {"b": 0}}, {"label": "k1", "env_id": "K1-v0"}],
                            },
                            {"name": "e", "range": {"key": "opt.episode_id", "start": 5, "count": 3}},
                        ],
                    },
                    {"variant": "two", "env_id": "Two-v0", "make": {"nested": {"q": 2}}},
                ],
            }
        ],
        "columns": [{"id": "c", "tasks": ["t"]}],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    t = load_suite_file(path).task("t")
    assert t.seeds == list(range(7)) and t.episode_count == 2 * 3 + 1
    c = t.cell(4)  # block one: k1 (second value), episode 5 + 1
    assert (c.env_id, c.make, c.reset) == ("K1-v0", {"a": 1, "nested": {"p": 1}}, {"opt": {"u": 1, "episode_id": 6}})
    assert c.labels == {"variant": "one", "k": "k1", "e": "6"}
    last = t.cell(6)
    assert (last.env_id, last.make, last.labels) == ("Two-v0", {"a": 1, "nested": {"p": 1, "q": 2}}, {"variant": "two"})
    keys = [env_key(c.env_id, c.make) for c in (t.cell(0), t.cell(1), t.cell(3))]
    assert keys[0] == keys[1] != keys[2]  # same setting, another episode id; another k value
    with pytest.raises(IndexError):
        t.cell(7)
    spec["tasks"][0]["seeds"] = [0, 9]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SuiteError, match="outside its grid of 7 episodes"):
        load_suite_file(path)


def test_gr_and_wr_average_the_simplerenv_columns_of_the_dualvla_suite() -> None:
    from vlascore.qa.summary import summarise

    d = load_suite("simpler-dualvla")
    keys = [d.column_key(c) for c in d.result_columns if c.in_mean]
    values = dict(zip(keys, [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 5.0, 15.0, 25.0], strict=True))
    s = summarise({**values, "google_vm/open_drawer": 99.0})  # breakdown columns do not count
    assert (s["GR"].value, s["GR"].missing) == (35.0, []) and s["GR"].columns == keys[:6]
    assert (s["WR"].value, s["WR"].columns) == (15.0, keys[6:])
    assert s["Average"].columns == ["GR", "WR"] and s["Average"].value == 25.0 and s["Average"].missing == ["MM"]
    vm_only = summarise({k: v for k, v in values.items() if k.startswith("google_vm/")})
    assert vm_only["GR"].value == 20.0 and vm_only["GR"].partial and len(vm_only["GR"].missing) == 3
    # the ManiSkill 3 twins are another protocol: their columns do not fill WR
    assert summarise({"bridge_ms3/put_spoon_on_towel": 50.0})["WR"].value is None


def test_tasks_list_states_grids_shared_settings_and_averages() -> None:
    from typer.testing import CliRunner

    from vlascore.cli import app

    shown = CliRunner().invoke(app, ["tasks", "list", "simpler-dualvla"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "average simpler_9: mean of vm_pick_coke_can, vm_move_near, vm_drawer, va_pick_coke_can" in text
    assert "vm_drawer = mean of vm_open_drawer+vm_close_drawer" in text
    bridge = " ".join(CliRunner().invoke(app, ["tasks", "list", "simpler-bridge"]).output.split())
    assert "5 Hz control / 500 Hz physics" in bridge and "success: final" in bridge
    paths = [str(p) for p in sorted((Path(__file__).resolve().parents[1] / "tasks").glob("*.yaml"))]
    ok = CliRunner().invoke(app, ["tasks", "validate", *paths])
    assert ok.exit_code == 0, ok.output
