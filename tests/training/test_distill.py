"""The dual-teacher distillation loss against hand computations, its gradients, and the tiny example run."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from vlascore.training.distill import (
    MULTIMODAL,
    ROBOT,
    DualTeacherDistillLoss,
    token_kl,
    velocity_mse,
)


def softmax(xs: list[float], t: float) -> list[float]:
    e = [math.exp(x / t) for x in xs]
    return [v / sum(e) for v in e]


def kl(teacher: list[float], student: list[float], t: float) -> float:
    p, q = softmax(teacher, t), softmax(student, t)
    return t * t * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def test_token_kl_is_t_squared_kl_by_hand() -> None:
    s = [[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]
    t = [[0.0, 2.0, 0.0], [1.0, -1.0, 0.0]]
    for temp in (1.0, 2.0):
        got = token_kl(torch.tensor(s), torch.tensor(t), temp)
        assert got.tolist() == pytest.approx([kl(t[0], s[0], temp), kl(t[1], s[1], temp)], rel=1e-6)
    same = token_kl(torch.tensor(s), torch.tensor(s), 1.0)
    assert same.abs().max() < 1e-6


def batch() -> dict:
    """Sample 0: robot (2 action positions in the student at 2, 3; the teacher has them at 0, 1); sample 1:
    multimodal (1 answer position at 1); vocabulary 3."""
    g = torch.Generator().manual_seed(0)
    student = torch.randn(2, 4, 3, generator=g)
    action_teacher = torch.randn(1, 2, 3, generator=g)  # the robot rows only
    reasoning_teacher = torch.randn(2, 4, 3, generator=g)  # the whole batch (row 0 is ignored)
    student_mask = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 0]], dtype=torch.bool)
    return {
        "student_logits": student,
        "student_mask": student_mask,
        "action_teacher_logits": action_teacher,
        "action_teacher_mask": torch.tensor([[1, 1]], dtype=torch.bool),
        "reasoning_teacher_logits": reasoning_teacher,
        "reasoning_teacher_mask": student_mask,
    }


def test_both_branches_match_a_hand_computation() -> None:
    b = batch()
    temp, weight = 2.0, 0.15
    loss = DualTeacherDistillLoss(weight=weight, temperature=temp)
    task = torch.tensor(1.25)
    out = loss(task, [ROBOT, MULTIMODAL], **b)
    s, at, rt = (
        b["student_logits"].tolist(),
        b["action_teacher_logits"].tolist(),
        b["reasoning_teacher_logits"].tolist(),
    )
    robot = (kl(at[0][0], s[0][2], temp) + kl(at[0][1], s[0][3], temp)) / 2  # token-mean within the sample
    multimodal = kl(rt[1][1], s[1][1], temp)
    assert float(out.kd_action) == pytest.approx(robot, rel=1e-5)
    assert float(out.kd_reasoning) == pytest.approx(multimodal, rel=1e-5)
    assert float(out.kd) == pytest.approx((robot + multimodal) / 2, rel=1e-5)  # then the mean over samples
    assert float(out.total) == pytest.approx(1.25 + weight * (robot + multimodal) / 2, rel=1e-5)
    assert DualTeacherDistillLoss().weight == 0.15  # the paper's lambda is the default


def test_teacher_is_chosen_by_source() -> None:
    b = batch()
    loss = DualTeacherDistillLoss()
    out = loss(torch.tensor(0.0), torch.tensor([ROBOT, MULTIMODAL]), **b)
    swapped = dict(b)
    swapped["reasoning_teacher_logits"] = torch.zeros_like(b["reasoning_teacher_logits"])
    out2 = loss(torch.tensor(0.0), ["robot", "multimodal"], **swapped)
    assert float(out2.kd_action) == pytest.approx(float(out.kd_action))  # robot samples never see it
    assert float(out2.kd_reasoning) != pytest.approx(float(out.kd_reasoning))
    # Teachers given for the whole batch or for their source's rows only give the same result.
    full = dict(b)
    full["action_teacher_logits"] = torch.cat([b["action_teacher_logits"], torch.randn(1, 2, 3)])
    full["action_teacher_mask"] = torch.tensor([[1, 1], [0, 0]], dtype=torch.bool)
    assert float(loss(torch.tensor(0.0), [ROBOT, MULTIMODAL], **full).kd) == pytest.approx(float(out.kd))
    only_robot = loss(
        torch.tensor(0.0),
        [ROBOT, ROBOT],
        **{**b, "action_teacher_logits": torch.randn(2, 2, 3), "action_teacher_mask": torch.tensor([[1, 1], [1, 0]])},
    )
    assert only_robot.kd_reasoning is None and only_robot.kd_action is not None


def test_errors_name_the_problem() -> None:
    b = batch()
    loss = DualTeacherDistillLoss()
    with pytest.raises(ValueError, match="2 distilled student positions and 1 teacher positions"):
        loss(torch.tensor(0.0), [ROBOT, MULTIMODAL], **{**b, "action_teacher_mask": torch.tensor([[1, 0]])})
    with pytest.raises(ValueError, match="multimodal samples need"):
        loss(torch.tensor(0.0), [ROBOT, MULTIMODAL], **{**b, "reasoning_teacher_logits": None})
    with pytest.raises(ValueError, match="unknown sample source 'web'"):
        loss(torch.tensor(0.0), ["robot", "web"], **b)


def test_gradient_flows_only_into_the_student() -> None:
    torch.manual_seed(0)
    student, action_teacher, reasoning_teacher = (torch.nn.Linear(5, 3) for _ in range(3))
    x = torch.randn(2, 4, 5)
    b = batch()
    out = DualTeacherDistillLoss()(
        torch.tensor(0.0),
        [ROBOT, MULTIMODAL],
        student_logits=student(x),
        student_mask=b["student_mask"],
        action_teacher_logits=action_teacher(x[:1, :2]),  # teachers run with grad enabled on purpose
        action_teacher_mask=b["action_teacher_mask"],
        reasoning_teacher_logits=reasoning_teacher(x),
        reasoning_teacher_mask=b["student_mask"],
    )
    out.total.backward()
    assert student.weight.grad is not None and student.weight.grad.abs().sum() > 0
    assert action_teacher.weight.grad is None and reasoning_teacher.weight.grad is None


def test_continuous_head_uses_the_velocity_mse() -> None:
    sv = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[5.0, 5.0], [5.0, 5.0]]], requires_grad=True)
    tv = torch.tensor([[[0.0, 2.0], [1.0, 1.0]]])  # the robot sample's teacher velocity only
    assert velocity_mse(sv[:1], tv).tolist() == pytest.approx([(1 + 0 + 1 + 1) / 4])
    b = batch()
    out = DualTeacherDistillLoss(temperature=3.0)(
        torch.tensor(0.0), [ROBOT, MULTIMODAL], student_velocity=sv, teacher_velocity=tv, **b
    )
    assert float(out.kd_action.detach()) == pytest.approx(0.75)  # no T^2 on the velocity term
    out.total.backward()
    assert sv.grad is not None and sv.grad[1].abs().sum() == 0  # the multimodal row's velocity is not used


def test_example_run_lowers_the_kd_term() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "distill_tiny.py"
    spec = importlib.util.spec_from_file_location("distill_tiny", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        before, after = module.main(steps=150)
    finally:
        torch.set_num_threads(threads)
    assert after < 0.8 * before, (before, after)
