"""InstructVLA / DualVLA through InstructVLA's own loader, on a tiny fake of its package and a tiny checkpoint."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import small_suite
from tiny_instructvla import MODULE, fake_instructvla_code, tiny_instructvla_checkpoint

import vlascore
from vlascore import runner
from vlascore.adapters import EpisodeContext, make_adapter
from vlascore.adapters.check import check_adapter, synthetic_observation
from vlascore.adapters.instructvla import clean_reasoning
from vlascore.backends import Observation
from vlascore.suites import Suite, load_suite

torch = pytest.importorskip("torch")

ANSWER = "the red cube is left of the green goal"
# the normalised chunk the action expert returns (4 steps: future_action_window_size 3)
CHUNK = np.array(
    [
        [0.5, -0.5, 0.0, 1.0, -1.0, 0.5, 0.9],
        [-0.5, 0.5, 1.0, 0.0, 0.5, -0.5, 0.2],
        [1.5, 0.0, -1.0, 0.5, 0.0, 0.0, 0.7],  # 1.5 is clipped to 1
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)
# by hand: clip to [-1, 1], gripper 0/1 at 0.5, then 0.5 * (x + 1) * (q99 - q01) + q01 with bridge_dataset's
# q01 = [-0.02, -0.04, -0.03, -0.1, -0.1, -0.2], q99 = [0.02, 0.04, 0.05, 0.1, 0.3, 0.2]
RAW = np.array(
    [
        [0.01, -0.02, 0.01, 0.1, -0.1, 0.1, 1.0],
        [-0.01, 0.02, 0.05, 0.0, 0.2, -0.1, 0.0],
        [0.02, 0.0, -0.03, 0.05, 0.1, 0.0, 1.0],
        [0.0, 0.0, 0.01, 0.0, 0.1, 0.0, 0.0],
    ]
)
COMMANDS = np.column_stack([RAW[:, :6], [1.0, -1.0, 1.0, -1.0]])  # WidowX: +1 open / -1 close


@pytest.fixture(autouse=True)
def _forget_instructvla() -> Iterator[None]:
    """Each test imports the fake package afresh (the adapter puts -M code on sys.path)."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [m for m in sys.modules if m == "vla" or m.startswith("vla.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_instructvla_code(tmp_path_factory.mktemp("clone") / "InstructVLA")


@pytest.fixture(scope="module")
def run(code: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs") / "generalist"
    tiny_instructvla_checkpoint(root, code, chunk=CHUNK, answer=ANSWER)
    return root


def make(name: str = "instructvla", **options: Any) -> Any:
    return make_adapter(name, {"unnorm_key": "bridge_dataset", **options})


def obs(value: int = 0) -> Observation:
    o = synthetic_observation(load_suite("toy").tasks[0], np.random.default_rng(value))
    o.image = np.full((32, 32, 3), value, dtype=np.uint8)
    return o


def start(adapter: Any, seed: int = 0) -> None:
    adapter.reset(EpisodeContext(task=load_suite("toy").tasks[0], seed=seed, episode_id=f"ToyPick-{seed}"))


def test_missing_code_says_what_to_install(run: Path, code: Path, tmp_path: Path) -> None:
    with pytest.raises(ImportError, match=r"git clone https://github.com/InternRobotics/InstructVLA.*-M code="):
        make(path=str(run))
    with pytest.raises(FileNotFoundError, match="no `vla/` package there"):
        make(path=str(run), code=str(tmp_path))
    broken = fake_instructvla_code(tmp_path / "broken")
    module = broken / f"{MODULE.replace('.', '/')}.py"
    module.write_text("import flash_attn_not_here  # noqa: F401\n" + module.read_text())
    with pytest.raises(ImportError, match="imports `flash_attn_not_here`, which is not installed"):
        make(path=str(run), code=str(broken))


def test_missing_assets_and_a_second_clone(run: Path, tmp_path: Path) -> None:
    bare = fake_instructvla_code(tmp_path / "bare", assets=False)
    with pytest.raises(FileNotFoundError, match=r"missing Eagle2-2B, empty_language_adapter.*InstructVLA_Assets"):
        make(path=str(run), code=str(bare))
    other = fake_instructvla_code(tmp_path / "other")
    with pytest.raises(ImportError, match="already imported from .*bare.*fresh process"):
        make(path=str(run), code=str(other))


def test_checkpoint_paths(code: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(code))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make(path=str(tmp_path / "no-such-run"))
    two = tmp_path / "two"
    pt = tiny_instructvla_checkpoint(two, code)
    (two / "checkpoints" / "step-000200.pt").write_bytes(pt.read_bytes())
    with pytest.raises(ValueError, match=r"holds 2 .pt files.*-M path=.*/checkpoints/NAME.pt"):
        make(path=str(two))
    (two / "dataset_statistics.json").unlink()
    with pytest.raises(FileNotFoundError, match="no dataset_statistics.json"):
        make(path=str(pt))
    with pytest.raises(ValueError, match="RUN_DIR/checkpoints/NAME.pt"):
        make(path=str(two / "config.json"))


def test_actions_and_reasoning_by_hand(run: Path, code: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(code))  # InstructVLA on sys.path, as after `export PYTHONPATH=...`
    adapter = make(path=str(run))
    assert (adapter.reasons, adapter.stage, adapter.chunk_size, adapter.execute_steps) == (True, "stage2", 4, 1)
    assert adapter.info()["ensemble"] == {"alpha": 0.1, "horizon": 4}  # Bridge's 7, capped by the chunk length
    start(adapter)
    steps = [adapter.act(obs(), "Pick up the RED cube") for _ in range(3)]
    np.testing.assert_allclose(steps[0].action, COMMANDS[:1], atol=1e-12)
    # second call: the previous chunk's 2nd action and this chunk's 1st, weighted by exp(0.1 * cosine similarity
    # to the newest prediction)
    preds = np.stack([RAW[1], RAW[0]])
    cos = preds @ RAW[0] / (np.linalg.norm(preds, axis=1) * np.linalg.norm(RAW[0]) + 1e-7)
    w = np.exp(0.1 * cos) / np.exp(0.1 * cos).sum()
    np.testing.assert_allclose(steps[1].action[0, :6], (w @ preds)[:6], atol=1e-12)
    assert steps[1].action[0, 6] == 1.0  # openness w @ [0, 1] = 0.52 > 0.5: open
    assert [s.reasoning for s in steps] == [ANSWER] * 3 and all(s.intention is None for s in steps)
    model = adapter.model
    call = model.calls[-1]
    assert call["instruction"] == "pick up the red cube" and call["size"] == (32, 32)  # the camera image as is
    assert call["user"] == "What action should the robot take to pick up the red cube? First answer my question."
    assert call["assistant"].startswith(ANSWER) and call["unnorm_key"] == "bridge_dataset"
    assert call["kwargs"] == {"do_sample": False}
    assert model.generations == 1  # the answer is cached for 20 calls, as InstructVLA does
    start(adapter)  # a new episode clears it
    adapter.act(obs(), "pick up the red cube")
    assert model.generations == 2


def test_chunk_execute_and_options(run: Path, code: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(code))
    pt = next((run / "checkpoints").glob("*.pt"))  # the .pt file itself, as InstructVLA's scripts take it
    adapter = make(path=str(pt), ensemble="none", execute=3, reasoning=False)
    start(adapter)
    step = adapter.act(obs(), "pick")
    np.testing.assert_allclose(step.action, COMMANDS[:3], atol=1e-12)
    assert step.reasoning is None and not adapter.reasons and adapter.execute_steps == 3
    assert adapter.model.calls[-1]["user"] == "What action should the robot take to pick?"
    google = make(path=str(run), unnorm_key="fractal20220817_data")
    assert google.info()["ensemble"]["horizon"] == 2 and google.gripper.robot == "google"
    assert (google.action_space.gripper_open, google.action_space.gripper_binary) == (-1, False)
    with pytest.raises(ValueError, match=r"-M unnorm_key=KEY.*Keys: bridge_dataset, fractal20220817_data"):
        make_adapter("instructvla", {"path": str(run)})
    with pytest.raises(ValueError, match="Did you mean 'bridge_dataset'"):
        make(path=str(run), unnorm_key="bridge_datset")
    with pytest.raises(ValueError, match="bfloat16"):
        make(path=str(run), dtype="float16")
    with pytest.raises(ValueError, match="ensemble_horizon must be in 1..4"):
        make(path=str(run), ensemble_horizon=7)
    state = code / "vla" / "state_variant.py"
    state.write_text(
        f"from {MODULE} import InstructVLA, load_vla as _load\n\n\n"
        "class WithState(InstructVLA):\n"
        "    def predict_action(self, image, instruction, unnorm_key=None, proprio=None, **kwargs):\n"
        "        raise AssertionError\n\n\n"
        "def load_vla(path, **kwargs):\n"
        "    vla = _load(path, **kwargs)\n"
        "    vla.__class__ = WithState\n"
        "    return vla\n"
    )
    with pytest.raises(ValueError, match="proprio"):
        make(path=str(run), module="vla.state_variant")


def test_stage1_is_a_specialist_and_dualvla_needs_a_reasoning_checkpoint(code: Path, tmp_path: Path) -> None:
    expert = tmp_path / "expert"
    tiny_instructvla_checkpoint(expert, code, stage="stage1", chunk=CHUNK)
    adapter = make(path=str(expert), code=str(code))
    assert not adapter.reasons and adapter.info()["prompt"] == "What action should the robot take to {instruction}?"
    start(adapter)
    assert adapter.act(obs(), "pick").reasoning is None
    with pytest.raises(ValueError, match="reasoning needs a stage-2.*stage1 checkpoint"):
        make(path=str(expert), code=str(code), reasoning=True)
    with pytest.raises(ValueError, match="stage-2"):
        make("dualvla", path=str(expert), code=str(code))
    with pytest.raises(ValueError, match="DualVLA's weights are not public.*-M path="):
        make_adapter("dualvla", {"code": str(code)})


def test_independent_calls_and_conformance(code: Path, tmp_path: Path, toy_suite: Suite) -> None:
    noisy = tmp_path / "noisy"  # actions from the random weights and the flow's noise
    tiny_instructvla_checkpoint(noisy, code, head_scale=1.0, noise_scale=0.05, answer="i will pick it up", seed=1)
    adapter = make(path=str(noisy), code=str(code), ensemble="none")
    images = [adapter.images([obs(v)])[0] for v in (0, 200)]
    torch.manual_seed(0)
    both = adapter.predict(images, ["pick", "push"])
    torch.manual_seed(0)
    one = adapter.predict(images[:1], ["pick"]) + adapter.predict(images[1:], ["push"])
    for a, b in zip(both, one, strict=True):
        assert np.array_equal(a.action, b.action) and a.reasoning == b.reasoning
    assert not np.array_equal(both[0].action, both[1].action) and both[0].reasoning == "i will pick it up"
    reports = check_adapter(lambda: make(path=str(noisy), code=str(code)), [toy_suite.tasks[0]], timed_calls=1)
    assert not reports[0].problems, [(c.name, c.detail) for c in reports[0].checks]
    status = {c.name: c.status for c in reports[0].checks}
    assert (status["determinism"], status["act_batch"], status["reasoning"]) == ("ok", "ok", "ok")


def test_a_dualvla_episode_through_the_runner(run: Path, code: Path, toy_suite: Suite, tmp_path: Path) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], [0], max_steps=3)
    args = {"path": str(run), "code": str(code), "unnorm_key": "bridge_dataset"}
    summary = runner.run(model="dualvla", model_args=args, suite=suite, out=tmp_path / "r", episodes=1)
    assert (summary.ran, summary.errored) == (1, 0)
    recorded = vlascore.load_run(tmp_path / "r")
    assert list(recorded.steps["reasoning"]) == [ANSWER] * 3
    info = recorded.run.adapter_info
    assert info["reasons"] and info["stage"] == "stage2" and "ToyPick" in info["conversions"]


def test_reasoning_text_is_cleaned() -> None:
    assert clean_reasoning("the cube <|im_end|> <new_token_3><new_token_4>") == "the cube"
    assert clean_reasoning("<|im_end|>") is None and clean_reasoning(None) is None
