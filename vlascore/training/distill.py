"""Dual-teacher adaptive distillation (DualVLA, Eqs. 5-7) as a plain torch module.

    L = L_task + lambda * L_KD,   lambda = 0.15
    L_KD (robot sample)      = T^2 * KL( p_action_teacher(a | o)       || p_student(a | o, reasoning) )
    L_KD (multimodal sample) = T^2 * KL( p_reasoning_teacher(y | x)    || p_student(y | x) )

with p = softmax(logits / T). The teacher is chosen by each sample's source. For discrete action tokens the KL is
token-level: one KL per distilled position, averaged over the sample's positions, then over the samples that have
any. For a continuous action head (flow matching) the paper is silent; this module uses the mean squared error
between the student's and the action teacher's velocity fields at the same noisy action and time, without the T^2
factor (a temperature has no meaning there); see docs/dualvla_data.md.

The module needs no trainer: give it the task loss and the logits (or velocities) you already computed. The
teachers' outputs are detached, so no gradient reaches a teacher. The student and each teacher see different
inputs (the action teacher sees no reasoning), so each side states its own distilled positions with a mask; the
k-th student position of a sample is matched with the k-th teacher position of the same sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vlascore.extras import require

require("torch", purpose="vlascore.training.distill")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

ROBOT, MULTIMODAL = 0, 1
"""Sample sources: robot data (distilled against the action teacher), multimodal data (the reasoning teacher)."""
PAPER_WEIGHT = 0.15
"""lambda in the paper."""


@dataclass
class DistillLosses:
    """The parts of one batch's loss (each a scalar tensor; `total` is the one to backpropagate)."""

    total: Tensor
    """task + weight * kd."""
    task: Tensor
    """The student's own loss, as given."""
    kd: Tensor
    """Mean distillation term over the samples that have one (0 when none has)."""
    kd_action: Tensor | None
    """Mean over robot samples (None: no robot sample had a distilled position)."""
    kd_reasoning: Tensor | None
    """Mean over multimodal samples (None: none had one)."""


def token_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """(N,) T^2 * KL(softmax(teacher / T) || softmax(student / T)) per position, for (N, V) logits. The teacher is
    detached."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ"
        )
    t = temperature
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    return kl * (t * t)


def velocity_mse(student_velocity: Tensor, teacher_velocity: Tensor) -> Tensor:
    """(B,) mean squared difference of (B, ...) velocity fields per sample; the teacher is detached."""
    if student_velocity.shape != teacher_velocity.shape:
        raise ValueError(
            f"student velocity {tuple(student_velocity.shape)} and teacher velocity "
            f"{tuple(teacher_velocity.shape)} differ"
        )
    diff = student_velocity.float() - teacher_velocity.detach().float()
    return (diff * diff).flatten(1).mean(dim=1)


def source_tensor(source: Tensor | Sequence[int | str], device: torch.device | None = None) -> Tensor:
    """(B,) long: 0 robot, 1 multimodal; strings "robot" / "multimodal" are accepted."""
    if isinstance(source, Tensor):
        out = source.long()
    else:
        names = {"robot": ROBOT, "multimodal": MULTIMODAL}
        try:
            out = torch.tensor([names[s] if isinstance(s, str) else int(s) for s in source], dtype=torch.long)
        except KeyError as exc:
            raise ValueError(f"unknown sample source {exc.args[0]!r}: use robot or multimodal") from None
    if out.ndim != 1 or not bool(((out == ROBOT) | (out == MULTIMODAL)).all()):
        raise ValueError("source must be one value per sample, each 0 (robot) or 1 (multimodal)")
    return out.to(device) if device is not None else out


def _rows(teacher: Tensor, rows: Tensor, batch: int, what: str) -> Tensor:
    """The teacher's rows for the samples `rows` (bool, B): given for the whole batch or for those samples only."""
    if teacher.shape[0] == batch:
        return teacher[rows]
    if teacher.shape[0] == int(rows.sum()):
        return teacher
    raise ValueError(
        f"{what} has {teacher.shape[0]} rows: give one per sample ({batch}) or one per sample of its "
        f"source ({int(rows.sum())})"
    )


def _token_terms(
    student_logits: Tensor,
    student_mask: Tensor,
    teacher_logits: Tensor,
    teacher_mask: Tensor | None,
    rows: Tensor,
    temperature: float,
    what: str,
) -> tuple[Tensor, Tensor]:
    """Per selected sample: (mean token KL, has-positions flag)."""
    batch = student_logits.shape[0]
    s_logits, s_mask = student_logits[rows], student_mask[rows].bool()
    t_logits = _rows(teacher_logits, rows, batch, f"{what} logits")
    t_mask = s_mask if teacher_mask is None else _rows(teacher_mask, rows, batch, f"{what} mask").bool()
    s_count, t_count = s_mask.sum(dim=1), t_mask.sum(dim=1)
    if not torch.equal(s_count, t_count):
        bad = int(torch.nonzero(s_count != t_count)[0, 0])
        raise ValueError(
            f"{what}: sample {bad} of its source has {int(s_count[bad])} distilled student positions "
            f"and {int(t_count[bad])} teacher positions; they must match one to one"
        )
    per_token = token_kl(s_logits[s_mask], t_logits[t_mask], temperature)  # row-major: sample by sample
    sample_of = torch.arange(len(s_count), device=per_token.device).repeat_interleave(s_count)
    sums = torch.zeros(len(s_count), device=per_token.device).index_add(0, sample_of, per_token)
    has = s_count > 0
    return sums / s_count.clamp(min=1), has


class DualTeacherDistillLoss(nn.Module):
    """task loss + weight * (the source-chosen teacher's distillation term); see the module docstring."""

    def __init__(self, weight: float = PAPER_WEIGHT, temperature: float = 1.0) -> None:
        super().__init__()
        if weight < 0 or temperature <= 0:
            raise ValueError("weight must be >= 0 and temperature > 0")
        self.weight = float(weight)
        self.temperature = float(temperature)

    def forward(
        self,
        task_loss: Tensor,
        source: Tensor | Sequence[int | str],
        *,
        student_logits: Tensor | None = None,
        student_mask: Tensor | None = None,
        action_teacher_logits: Tensor | None = None,
        action_teacher_mask: Tensor | None = None,
        reasoning_teacher_logits: Tensor | None = None,
        reasoning_teacher_mask: Tensor | None = None,
        student_velocity: Tensor | None = None,
        teacher_velocity: Tensor | None = None,
    ) -> DistillLosses:
        """
        task_loss: the student's own scalar loss (L_VLA).
        source: (B,) 0 / "robot" or 1 / "multimodal" per sample.
        student_logits, student_mask: (B, L, V) and (B, L): the student's distributions and the positions to
            distil (action tokens of robot samples, answer tokens of multimodal samples).
        action_teacher_logits, action_teacher_mask: (B or B_robot, La, V) and (B or B_robot, La): the action
            teacher's outputs on the robot samples (it sees no reasoning) and its action positions.
        reasoning_teacher_logits, reasoning_teacher_mask: the same for the reasoning teacher on multimodal samples
            (mask omitted: the student's positions).
        student_velocity, teacher_velocity: (B or B_robot, ...) a continuous action head's velocity fields on the
            robot samples; when given they replace the robot samples' token term.
        """
        device = task_loss.device
        src = source_tensor(source, device)
        batch = len(src)
        robot, multimodal = src == ROBOT, src == MULTIMODAL
        zero = task_loss.new_zeros(())
        terms: list[Tensor] = []
        kd_action: Tensor | None = None
        kd_reasoning: Tensor | None = None
        if bool(robot.any()):
            if student_velocity is not None:
                if teacher_velocity is None:
                    raise ValueError("student_velocity needs teacher_velocity (the action teacher's)")
                sv = _rows(student_velocity, robot, batch, "student_velocity")
                tv = _rows(teacher_velocity, robot, batch, "teacher_velocity")
                per_sample = velocity_mse(sv, tv)
                has = torch.ones(len(per_sample), dtype=torch.bool, device=per_sample.device)
            else:
                if student_logits is None or student_mask is None or action_teacher_logits is None:
                    raise ValueError(
                        "robot samples need student_logits, student_mask and action_teacher_logits "
                        "(or student_velocity and teacher_velocity for a continuous head)"
                    )
                per_sample, has = _token_terms(
                    student_logits,
                    student_mask,
                    action_teacher_logits,
                    action_teacher_mask,
                    robot,
                    self.temperature,
                    "action teacher",
                )
            if bool(has.any()):
                kd_action = per_sample[has].mean()
                terms.append(per_sample[has])
        if bool(multimodal.any()):
            if student_logits is None or student_mask is None or reasoning_teacher_logits is None:
                raise ValueError("multimodal samples need student_logits, student_mask and reasoning_teacher_logits")
            per_sample, has = _token_terms(
                student_logits,
                student_mask,
                reasoning_teacher_logits,
                reasoning_teacher_mask,
                multimodal,
                self.temperature,
                "reasoning teacher",
            )
            if bool(has.any()):
                kd_reasoning = per_sample[has].mean()
                terms.append(per_sample[has])
        kd = torch.cat(terms).mean().to(task_loss.dtype) if terms else zero
        return DistillLosses(task_loss + self.weight * kd, task_loss, kd, kd_action, kd_reasoning)
