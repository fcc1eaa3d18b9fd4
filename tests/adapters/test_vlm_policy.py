"""The VLM-as-policy adapter: its prompt, reply parsing (JSON and action tokens), batching, and tiny random-weight
VLMs steered to a planted reply running toy and ManiSkill episodes with their reasoning recorded (offline, CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import small_suite, write_suite

import vlascore
from vlascore import runner
from vlascore.adapters import make_adapter
from vlascore.adapters.action_tokens import ActionTokenizer
from vlascore.adapters.base import EpisodeContext
from vlascore.adapters.vlm_policy import (
    ReplyError,
    load_template,
    parse_json_reply,
    parse_token_reply,
    render_prompt,
    split_labelled,
)
from vlascore.extras import available
from vlascore.suites import ActionSpace, Suite, TaskSpec, load_suite

needs_models = pytest.mark.skipif(
    not (available("transformers") and available("torch")),
    reason="needs the models extra: pip install 'vlascore[models]'",
)

PICK = "pick up the red cube and move it to the green goal position"
CHAT = (
    "{% for m in messages %}{{ m['role'] }} : {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %} {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)
# The planted replies, one vocabulary word per piece (every piece distinct: see tiny_hf.plant_reply).
TEXT_REPLY = ["Reasoning:", "reach", "the", "red", "cube", "Intention:", "grasp", "it"]
TOKEN_ACTION = np.array([0.5, -0.25, 0.75, 0.1, -0.1, 0.05, -1.0])
JSON_REPLY = [
    '{"reasoning":',
    '"move',
    "left",
    "to",
    "the",
    'cube",',
    '"intention":',
    '"reach',
    'it",',
    '"action":',
    "[0.5,",
    "-0.25,",
    "0.75,",
    "0,",
    "0.125,",
    "-0.5,",
    "1]}",
]
JSON_ACTION = [0.5, -0.25, 0.75, 0.0, 0.125, -0.5, 1.0]


def _prompt(fmt: str = "json", space: ActionSpace | None = None, control_mode: str = "pd_ee_delta_pose") -> str:
    return render_prompt(load_template()[0], PICK, space or ActionSpace(), fmt, control_mode)


# --- the prompt ------------------------------------------------------------------------------------------------


def test_json_prompt_states_the_instruction_and_the_action_convention() -> None:
    text = _prompt()
    assert f"Task: {PICK}" in text
    assert "An action is 7 numbers, in this order:" in text
    for line in (
        "1. x: end-effector translation along x",
        "3. z: end-effector translation along z",
        "4. roll: end-effector rotation about x (intrinsic euler xyz)",
        "6. yaw: end-effector rotation about z",
        "7. gripper: 1 opens the gripper, -1 closes it",
    ):
        assert line in text
    assert "between -1 and 1; the controller (pd_ee_delta_pose) scales it" in text and "0 means no change" in text
    assert '"action": [x, y, z, roll, pitch, yaw, gripper]' in text and "one JSON object" in text
    assert "{{" not in text and "{%" not in text


def test_prompt_follows_other_conventions_and_the_tokens_format() -> None:
    closing = _prompt(space=ActionSpace(gripper_open=-1, gripper_binary=True))
    assert "7. gripper: -1 opens the gripper, 1 closes it" in closing
    assert "The gripper takes only -1 (open) or 1 (closed)." in closing
    units = _prompt(space=ActionSpace(mode="ee_absolute", rotation="quaternion", dim=8, normalized=False))
    assert "in the units of the controller" in units and "between -1 and 1" not in units
    assert "4. qw: end-effector target orientation, quaternion w" in units and "8. gripper" in units
    joints = _prompt(space=ActionSpace(mode="joint_delta", rotation="none", dim=8))
    assert "1. joint1: change of joint 1" in joints and "7. joint7: change of joint 7" in joints
    tokens = _prompt("tokens")
    assert 'a line "Reasoning: <what you see and your plan>", a line "Intention:' in tokens
    assert "then the action as 7 action tokens." in tokens and "JSON" not in tokens


def test_a_custom_prompt_template_and_its_errors(tmp_path: Path) -> None:
    mine = tmp_path / "mine.j2"
    mine.write_text("{{ instruction }} | {{ names | join(' ') }} | {{ format }}")
    template, where, sha = load_template(mine)
    assert render_prompt(template, PICK, ActionSpace(), "tokens") == f"{PICK} | x y z roll pitch yaw gripper | tokens"
    assert where == str(mine) and len(sha) == 64 and sha != load_template()[2]
    assert load_template()[1] == "prompts/vlm_policy.j2"
    with pytest.raises(ValueError, match="cannot read the prompt template"):
        load_template(tmp_path / "missing.j2")
    (tmp_path / "bad.j2").write_text("{% if %}")
    with pytest.raises(ValueError, match="is not valid Jinja"):
        load_template(tmp_path / "bad.j2")
    (tmp_path / "undefined.j2").write_text("{{ nonesuch }}")
    with pytest.raises(ValueError, match="cannot render the vlm prompt template: 'nonesuch' is undefined"):
        render_prompt(load_template(tmp_path / "undefined.j2")[0], PICK, ActionSpace(), "json")


# --- parsing replies ---------------------------------------------------------------------------------------------


def test_json_replies_are_read_through_fences_prose_and_small_mistakes() -> None:
    good = parse_json_reply('{"reasoning": "cube is left", "intention": "reach", "action": [0, 0.1, 0, 0, 0, 0, 1]}', 7)
    assert good.reasoning == "cube is left" and good.intention == "reach"
    np.testing.assert_array_equal(good.action, [0, 0.1, 0, 0, 0, 0, 1])
    fenced = (
        'Sure! Here is my answer.\n```json\n{\n  "reasoning": "go down",\n  "intention": "descend",\n'
        '  "action": [0, 0, -0.5, 0, 0, 0, 1]\n}\n```\nLet me know if you need more {help}.'
    )
    step = parse_json_reply(fenced, 7)
    assert (step.reasoning, step.intention, step.action[2]) == ("go down", "descend", -0.5)
    trailing = parse_json_reply('{"action": [0.1, 0, 0, 0, 0, 0, -1,], "intention": "close",}', 7)
    assert trailing.action[-1] == -1 and trailing.intention == "close" and trailing.reasoning is None
    nested = parse_json_reply('the set {a, b}; then {"answer": {"Action": [[1, 0, 0, 0, 0, 0, 1]], "Reasoning": 3}}', 7)
    assert nested.action.shape == (7,) and nested.reasoning == "3"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("I cannot see a robot.", "the model's reply holds no JSON object; reply: 'I cannot see a robot.'"),
        ('{"reasoning": "thinking"}', 'the model\'s JSON has no "action" key (keys: reasoning); reply: \'{"reasoning'),
        ('{"action": [0, 0, 0, 0, 0, 1]}', 'the model\'s "action" has shape (6,), expected 7 numbers'),
        ('{"action": "move left"}', 'the model\'s "action" is not a list of numbers'),
        ('{"action": [NaN, 0, 0, 0, 0, 0, 1]}', 'the model\'s "action" holds NaN or inf'),
        ('{"action": [0, 0, 0', "the model's reply holds no JSON object; reply: '{\"action\": [0, 0, 0'"),
    ],
)
def test_unusable_json_replies_raise_quoting_the_reply(reply: str, message: str) -> None:
    with pytest.raises(ReplyError) as err:
        parse_json_reply(reply, 7)
    assert str(err.value).startswith(message)


def test_a_long_unusable_reply_is_quoted_truncated() -> None:
    with pytest.raises(ReplyError, match=r"reply: 'xxxx+'\.\.\. \(700 more characters\)$"):
        parse_json_reply("x" * 1000, 7)


def test_labelled_text_splits_into_reasoning_and_intention() -> None:
    assert split_labelled("Reasoning: cube is left\nIntention: reach it\nAction:") == ("cube is left", "reach it")
    assert split_labelled("Okay. reasoning : go  intention: lift") == ("go", "lift")
    assert split_labelled("just thinking aloud") == ("just thinking aloud", None)
    assert split_labelled("Intention: grasp") == (None, "grasp")
    assert split_labelled("  ") == (None, None)


WORDS = {1: "Reasoning:", 2: "the", 3: "cube", 4: "Intention:", 5: "grasp", 6: "done"}


def _decode(ids: list[int]) -> str:
    return " ".join(WORDS[i] for i in ids)


def test_action_tokens_decode_to_the_normalised_action() -> None:
    tokens = ActionTokenizer(1000, bins=256)
    target = np.array([0.5, -0.25, 0.75, 0.0, 0.1, -1.0, 1.0])
    ids = [1, 2, 3, 4, 5, *tokens.encode(target).tolist(), 6]  # text, 7 action tokens, ignored trailing text
    step = parse_token_reply(ids, tokens, 7, _decode)
    assert (step.reasoning, step.intention) == ("the cube", "grasp")
    np.testing.assert_allclose(step.action, target, atol=1 / 255)
    np.testing.assert_array_equal(step.action, tokens.decode(tokens.encode(target)))
    bare = parse_token_reply(tokens.encode(target).tolist(), tokens, 7, _decode)
    assert bare.reasoning is None and bare.intention is None


def test_unusable_token_replies_raise_quoting_the_reply() -> None:
    tokens = ActionTokenizer(1000, bins=256)
    with pytest.raises(ReplyError, match=r"holds no action tokens \(ids 745\.\.999\); reply: 'Reasoning: the cube'"):
        parse_token_reply([1, 2, 3], tokens, 7, _decode)
    three = tokens.encode(np.array([0.0, 0.5, 1.0])).tolist()
    with pytest.raises(ReplyError, match=rf"3 consecutive action tokens, expected 7; reply: 'the <action:{three[0]}>"):
        parse_token_reply([2, *three, 6], tokens, 7, _decode)
    with pytest.raises(ReplyError, match="holds no action tokens"):
        parse_token_reply([], tokens, 7, _decode)


# --- tiny checkpoints --------------------------------------------------------------------------------------------


def _tokenizer() -> Any:
    from tiny_hf import WORDS as TINY_WORDS
    from tiny_hf import build_tokenizer

    return build_tokenizer((*TINY_WORDS, *JSON_REPLY, "Reasoning:", "Intention:"))


def _image(seed: int = 0, size: int = 48) -> Any:
    from vlascore.adapters.preprocess import ImageSpec, preprocess_image

    return preprocess_image(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8), ImageSpec())


def _context(task: TaskSpec | None = None) -> EpisodeContext:
    task = task or load_suite("tabletop").task("PickCube")
    return EpisodeContext(task=task, seed=0, episode_id=f"{task.id}-0")


def _steered(path: Path, fmt: str, chat_template: str | None) -> tuple[Path, list[float]]:
    """A tiny VLM whose greedy reply is planted (see tiny_hf.plant_reply), and the action it decodes to."""
    from tiny_hf import plant_reply, tiny_llava

    from vlascore.adapters.vlm_policy import VLMPolicyAdapter

    tok = _tokenizer()
    tiny_llava(path, tokenizer=tok, chat_template=chat_template)
    probe = VLMPolicyAdapter(path=str(path), format=fmt)
    probe.reset(_context())
    after = int(probe.encode([_image()], [PICK])["input_ids"][0, -1])  # the prompt's last token, whatever the task
    if fmt == "tokens":
        assert probe.action_tokens is not None
        action_ids = probe.action_tokens.encode(TOKEN_ACTION).tolist()
        plant_reply(path, after, [*tok.convert_tokens_to_ids(TEXT_REPLY), *action_ids])
        return path, probe.action_tokens.decode(np.asarray(action_ids)).tolist()
    plant_reply(path, after, list(tok.convert_tokens_to_ids(JSON_REPLY)))
    return path, JSON_ACTION


@pytest.fixture(scope="module")
def random_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_hf import tiny_llava

    return tiny_llava(tmp_path_factory.mktemp("vlm") / "random", tokenizer=_tokenizer())


@pytest.fixture(scope="module")
def token_vlm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """Chat template + planted `Reasoning: ... Intention: ...` and 7 action tokens."""
    return _steered(tmp_path_factory.mktemp("vlm") / "tokens", "tokens", CHAT)


@pytest.fixture(scope="module")
def json_vlm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """No chat template (a plain prompt) + a planted JSON reply."""
    return _steered(tmp_path_factory.mktemp("vlm") / "json", "json", None)


@needs_models
def test_declaration_options_and_prompt_with_and_without_a_chat_template(
    token_vlm: tuple[Path, list[float]], json_vlm: tuple[Path, list[float]]
) -> None:
    from vlascore.adapters import ADAPTERS
    from vlascore.adapters.vlm_policy import VLMPolicyAdapter

    assert ADAPTERS.get("vlm") is VLMPolicyAdapter
    chat = VLMPolicyAdapter(path=str(token_vlm[0]), format="tokens", max_new_tokens=40)
    for suite in ("tabletop", "toy"):
        assert all(chat.action_space == t.action_space for t in load_suite(suite).tasks)
    assert chat.reasons and chat.chunk_size == 1 and chat.use_chat_template
    chat.reset(_context())
    text = chat.prompt_text(PICK)
    assert text.startswith("user : <image>You control a robot arm") and text.endswith("assistant :")
    assert f"Task: {PICK}" in text and "(pd_ee_delta_pose)" in text
    info = chat.info()
    assert (info["format"], info["chat_template"], info["max_new_tokens"]) == ("tokens", True, 40)
    assert info["temperature"] == 0 and info["path"] == str(token_vlm[0])
    assert info["prompt_template"] == "prompts/vlm_policy.j2" and info["prompt_sha256"] == load_template()[2]
    plain = VLMPolicyAdapter(path=str(json_vlm[0]))
    assert not plain.use_chat_template and plain.format == "json"
    assert plain.prompt_text(PICK).startswith("<image>You control a robot arm")
    assert VLMPolicyAdapter(path=str(token_vlm[0]), chat_template=False).prompt_text(PICK).startswith("<image>You")
    flipped = VLMPolicyAdapter(path=str(json_vlm[0]), action_space={"gripper_open": -1})
    assert flipped.action_space == ActionSpace(gripper_open=-1)
    assert "7. gripper: -1 opens the gripper, 1 closes it" in flipped.prompt_text(PICK)


@needs_models
def test_bad_options_fail_at_construction(json_vlm: tuple[Path, list[float]]) -> None:
    from vlascore.adapters.vlm_policy import VLMPolicyAdapter

    path = str(json_vlm[0])
    with pytest.raises(TypeError, match=r"unknown option\(s\) formt\. Did you mean 'format'\?"):
        VLMPolicyAdapter(path=path, formt="json")
    with pytest.raises(ValueError, match="bad --model-arg for adapter 'vlm': unknown option"):
        make_adapter("vlm", {"path": path, "max_tokens": 5})
    with pytest.raises(ValueError, match="unknown format 'yaml': use json or tokens"):
        VLMPolicyAdapter(path=path, format="yaml")
    with pytest.raises(ValueError, match="needs action_space.normalized=true"):
        VLMPolicyAdapter(path=path, format="tokens", action_space={"normalized": False})
    with pytest.raises(ValueError, match="has no chat template"):
        VLMPolicyAdapter(path=path, chat_template=True)
    with pytest.raises(ValueError, match="bad action_space option"):
        VLMPolicyAdapter(path=path, action_space={"dims": 7})
    with pytest.raises(ValueError, match="needs a checkpoint: -M path="):
        VLMPolicyAdapter()


@needs_models
def test_a_batch_equals_one_call_at_a_time(random_vlm: Path, token_vlm: tuple[Path, list[float]]) -> None:
    from vlascore.adapters.vlm_policy import VLMPolicyAdapter

    images = [_image(0), _image(1, size=64), _image(2, size=32)]
    instructions = [PICK, "push the cube", "stack the red cube on the green cube, then lift it and move it to the goal"]
    raw = VLMPolicyAdapter(path=str(random_vlm), format="tokens", max_new_tokens=8)
    mask = raw.encode(images, instructions)["attention_mask"]
    assert len(set(mask.sum(1).tolist())) == 3 and not mask[:, -1].eq(0).any()  # left-padded, lengths differ
    batched = raw.generate(images, instructions)
    assert batched == [raw.generate([im], [ins])[0] for im, ins in zip(images, instructions, strict=True)]
    assert all(len(ids) == 8 for ids in batched)  # a random model: no stop token, the budget is used up
    steered = VLMPolicyAdapter(path=str(token_vlm[0]), format="tokens")
    steps = steered.predict(images, instructions)
    for step, image, instruction in zip(steps, images, instructions, strict=True):
        one = steered.predict([image], [instruction])[0]
        assert (one.reasoning, one.intention) == (step.reasoning, step.intention) == ("reach the red cube", "grasp it")
        np.testing.assert_array_equal(one.action, step.action)
        np.testing.assert_array_equal(step.action, token_vlm[1])


@needs_models
def test_the_steered_vlm_passes_the_adapter_check(json_vlm: tuple[Path, list[float]]) -> None:
    from typer.testing import CliRunner

    from vlascore.cli import app

    result = CliRunner().invoke(
        app, ["adapter", "check", "vlm", "-M", f"path={json_vlm[0]}", "-s", "toy", "--steps", "2", "--calls", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "vlm passes the adapter checks on 1 task(s)" in result.output


# --- episodes --------------------------------------------------------------------------------------------------


def _assert_planted_run(out: Path, action: list[float], reasoning: str, intention: str, steps: int) -> None:
    run = vlascore.load_run(out)
    ep = run.episodes.iloc[0]
    assert ep["status"] == "ok", ep["failure_reason"]
    assert ep["num_steps"] == steps and ep["termination"] in ("max_steps", "success")
    assert (run.steps["reasoning"] == reasoning).all() and (run.steps["intention"] == intention).all()
    np.testing.assert_allclose(np.vstack(run.steps["action"].to_list()), np.tile(action, (steps, 1)), atol=1e-9)
    assert run.run.adapter == "vlm" and run.run.adapter_info["reasons"] is True


@needs_models
@pytest.mark.parametrize("fmt", ["tokens", "json"])
def test_steered_vlm_runs_a_toy_episode_with_its_reasoning_recorded(
    fmt: str,
    token_vlm: tuple[Path, list[float]],
    json_vlm: tuple[Path, list[float]],
    toy_suite: Suite,
    tmp_path: Path,
) -> None:
    path, action = token_vlm if fmt == "tokens" else json_vlm
    suite = small_suite(toy_suite, ["ToyPick"], [0], max_steps=6)
    runner.run(model="vlm", suite=suite, out=tmp_path / "r", model_args={"path": str(path), "format": fmt})
    if fmt == "tokens":
        _assert_planted_run(tmp_path / "r", action, "reach the red cube", "grasp it", 6)
    else:
        _assert_planted_run(tmp_path / "r", action, "move left to the cube", "reach it", 6)
    assert vlascore.load_run(tmp_path / "r").run.adapter_info["format"] == fmt


@needs_models
def test_an_unusable_reply_errors_the_episode_with_the_reply_quoted(
    random_vlm: Path, toy_suite: Suite, tmp_path: Path
) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], [0, 1], max_steps=4)
    summary = runner.run(
        model="vlm", suite=suite, out=tmp_path / "r", model_args={"path": str(random_vlm), "max_new_tokens": 6}
    )
    assert summary.ran == 2 and summary.errored == 2
    eps = vlascore.load_run(tmp_path / "r").episodes
    assert (eps["num_steps"] == 0).all()
    for reason in eps["failure_reason"]:
        assert reason.startswith("ReplyError in policy at step 0: the model's reply holds no JSON object; reply: '")
        assert reason.endswith("(the reply used all max_new_tokens=6 without finishing: raise -M max_new_tokens)")


@needs_models
@pytest.mark.slow
@pytest.mark.skipif(not available("mani_skill"), reason="needs the simulator: pip install 'vlascore[sim]'")
def test_tiny_vlm_runs_a_tabletop_episode_with_its_reasoning_recorded(
    token_vlm: tuple[Path, list[float]], tmp_path: Path
) -> None:
    """The acceptance check: a real ManiSkill3 episode on CPU, through the runner and through the CLI."""
    from typer.testing import CliRunner

    from vlascore.cli import app

    path, action = token_vlm
    suite = small_suite(load_suite("tabletop"), ["PickCube"], [0], max_steps=12)
    runner.run(model="vlm", suite=suite, out=tmp_path / "api", model_args={"path": str(path), "format": "tokens"})
    _assert_planted_run(tmp_path / "api", action, "reach the red cube", "grasp it", 12)
    frames, _ = vlascore.load_run(tmp_path / "api").frames("PickCube-0")
    assert frames.shape == (13, 128, 128, 3)

    suite_file = write_suite(suite, tmp_path / "suite.yaml")
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--model",
            "vlm",
            "-M",
            f"path={path}",
            "-M",
            "format=tokens",
            "--suite",
            str(suite_file),
            "-n",
            "1",
            "-o",
            str(tmp_path / "cli"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    _assert_planted_run(tmp_path / "cli", action, "reach the red cube", "grasp it", 12)
