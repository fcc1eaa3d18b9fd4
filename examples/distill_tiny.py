"""Dual-teacher distillation on CPU in seconds: a tiny random-weight student learns from two tiny random-weight
teachers with vlascore.training.distill.DualTeacherDistillLoss (lambda = 0.15), and the KD term falls.

Token layout (one vocabulary, as in a VLA whose action bins are tokens):
  robot sample:      [observation x4] [reasoning x4] [action x3]   the action teacher sees [observation x4] [action x3]
  multimodal sample: [image x4] [question x3] [answer x4]          the reasoning teacher sees the same tokens
The targets are drawn from the teachers (data the teachers model well), so the task loss and the KD term agree.

    python examples/distill_tiny.py     # the losses every 50 steps, then the KD term before -> after
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from vlascore.training.distill import MULTIMODAL, ROBOT, DualTeacherDistillLoss

VOCAB, OBS, REASON, ACTION, QUESTION, ANSWER = 48, 4, 4, 3, 3, 4


class TinyLM(nn.Module):
    """Embedding -> GRU -> logits over the vocabulary (a stand-in for a VLA's language model)."""

    def __init__(self, hidden: int = 96, sharpness: float = 1.0) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.rnn = nn.GRU(32, hidden, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)
        with torch.no_grad():  # random teachers with peaked distributions: something worth distilling
            self.head.weight.mul_(sharpness)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out)  # logits[:, i] predicts tokens[:, i + 1]


@torch.no_grad()
def sample_continuation(model: TinyLM, prefix: torch.Tensor, length: int, gen: torch.Generator) -> torch.Tensor:
    tokens = prefix
    for _ in range(length):
        probs = model(tokens)[:, -1].softmax(-1)
        tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=gen)], dim=1)
    return tokens[:, prefix.shape[1] :]


def make_batch(action_teacher: TinyLM, reasoning_teacher: TinyLM, size: int, gen: torch.Generator) -> dict:
    """Half robot, half multimodal samples; both sequences have 11 tokens."""
    half = size // 2
    obs = torch.randint(0, VOCAB, (half, OBS), generator=gen)
    reasoning = torch.randint(0, VOCAB, (half, REASON), generator=gen)
    actions = sample_continuation(action_teacher, obs, ACTION, gen)  # what the action teacher would do
    robot_student = torch.cat([obs, reasoning, actions], dim=1)
    robot_teacher = torch.cat([obs, actions], dim=1)
    prompt = torch.randint(0, VOCAB, (size - half, OBS + QUESTION), generator=gen)
    answer = sample_continuation(reasoning_teacher, prompt, ANSWER, gen)
    mm = torch.cat([prompt, answer], dim=1)
    tokens = torch.cat([robot_student, mm])
    length = tokens.shape[1]
    # The logits at position i predict token i + 1: distil the positions that predict the action / answer tokens.
    student_mask = torch.zeros(size, length, dtype=torch.bool)
    student_mask[:half, OBS + REASON - 1 : length - 1] = True
    student_mask[half:, OBS + QUESTION - 1 : length - 1] = True
    teacher_mask = torch.zeros(half, OBS + ACTION, dtype=torch.bool)
    teacher_mask[:, OBS - 1 : OBS + ACTION - 1] = True
    source = torch.tensor([ROBOT] * half + [MULTIMODAL] * (size - half))
    return {
        "tokens": tokens,
        "student_mask": student_mask,
        "robot_teacher_tokens": robot_teacher,
        "robot_teacher_mask": teacher_mask,
        "source": source,
    }


def select(data: dict, index: torch.Tensor) -> dict:
    """A minibatch: rows `index` of the pool (the teacher tensors hold robot rows only, in the pool's order)."""
    robot_rows = torch.cumsum(data["source"] == ROBOT, 0) - 1
    robot_index = robot_rows[index][data["source"][index] == ROBOT]
    out = {k: v[index] for k, v in data.items() if not k.startswith("robot_teacher")}
    out.update({k: v[robot_index] for k, v in data.items() if k.startswith("robot_teacher")})
    return out


def losses_on(student: TinyLM, teachers: tuple[TinyLM, TinyLM], loss_fn: DualTeacherDistillLoss, b: dict):
    action_teacher, reasoning_teacher = teachers
    logits = student(b["tokens"])
    mask = b["student_mask"][:, :-1]
    task = nn.functional.cross_entropy(logits[:, :-1][mask], b["tokens"][:, 1:][mask])
    multimodal = b["source"] == MULTIMODAL
    with torch.no_grad():  # (the loss detaches teacher outputs anyway)
        action_logits = action_teacher(b["robot_teacher_tokens"])
        reasoning_logits = reasoning_teacher(b["tokens"][multimodal])
    return loss_fn(
        task,
        b["source"],
        student_logits=logits,
        student_mask=b["student_mask"],
        action_teacher_logits=action_logits,
        action_teacher_mask=b["robot_teacher_mask"],
        reasoning_teacher_logits=reasoning_logits,
        reasoning_teacher_mask=b["student_mask"][multimodal],
    )


def main(steps: int = 300, batch_size: int = 64, seed: int = 0, every: int = 50) -> tuple[float, float]:
    """Train; returns the KD term on a held-out batch before and after."""
    torch.set_num_threads(1)  # tensors this small run fastest on one thread
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    student = TinyLM()
    teachers = (TinyLM(sharpness=12.0), TinyLM(sharpness=12.0))  # action teacher, reasoning teacher
    for teacher in teachers:
        teacher.requires_grad_(False).eval()
    pool = make_batch(*teachers, 8192, gen)  # the training data, drawn once
    held_out = make_batch(*teachers, 256, gen)
    loss_fn = DualTeacherDistillLoss()  # lambda = 0.15, T = 1
    optimiser = torch.optim.Adam(student.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(losses_on(student, teachers, loss_fn, held_out).kd)
    for step in range(steps):
        index = torch.randint(0, len(pool["source"]), (batch_size,), generator=gen)
        losses = losses_on(student, teachers, loss_fn, select(pool, index))
        optimiser.zero_grad()
        losses.total.backward()
        optimiser.step()
        if step % every == 0 or step == steps - 1:
            parts = {k: float(getattr(losses, k).detach()) for k in ("total", "task", "kd")}
            print(
                f"step {step:4d}  total {parts['total']:.4f}  task {parts['task']:.4f}  KD {parts['kd']:.4f}",
                flush=True,
            )
    with torch.no_grad():
        after_losses = losses_on(student, teachers, loss_fn, held_out)
    after = float(after_losses.kd)
    print(
        f"KD term on a held-out batch: {before:.4f} -> {after:.4f} ({after / before:.2f}x); "
        f"action {float(after_losses.kd_action or 0):.4f}, reasoning {float(after_losses.kd_reasoning or 0):.4f}"
    )
    return before, after


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(steps=args.steps, seed=args.seed)
