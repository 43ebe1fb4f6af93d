"""DeiT's distillation loss (Touvron et al. 2021, facebookresearch/deit losses.py), re-stated.

hard: (1 - alpha) * base(cls, y) + alpha * CE(dist, argmax(teacher))
soft: (1 - alpha) * base(cls, y) + alpha * KL(log_softmax(dist/tau) || log_softmax(teacher/tau)) * tau^2
      with DeiT's reduction: the KL is summed over batch and classes and divided by
      dist.numel() (= batch * classes), i.e. a per-logit mean -- NOT timm's 'batchmean'.
none: base(cls, y), and with a distillation head (deit_tiny) the mean of base(cls, y) and base(dist, y): both heads
      learn the labels, so the deployed output (their average) is what was trained -- the fair control.
The base criterion carries label smoothing / mixup soft targets, so smoothing only touches the
true-label term. The teacher is frozen, in eval mode, runs under inference_mode (optionally in
bf16 autocast) and sees the same, already augmented and mixed, batch as the student.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from vitc.runtime import autocast, channels_last


class TeacherAdapter(nn.Module):
    """Frozen teacher that accepts the student's normalised input."""

    def __init__(self, teacher: nn.Module, student_pre: dict, teacher_pre: dict, bf16: bool):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.bf16 = bf16
        self.memory = torch.channels_last if channels_last(teacher, bf16) else torch.contiguous_format
        self.teacher.to(memory_format=self.memory)
        ms, ss = torch.tensor(student_pre["mean"]), torch.tensor(student_pre["std"])
        mt, st = torch.tensor(teacher_pre["mean"]), torch.tensor(teacher_pre["std"])
        self.renorm = not (torch.allclose(ms, mt) and torch.allclose(ss, st))
        # x_t = (x_s * std_s + mean_s - mean_t) / std_t  as one affine map per channel
        self.register_buffer("scale", (ss / st).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", ((ms - mt) / st).view(1, -1, 1, 1), persistent=False)
        self.size = tuple(teacher_pre["input_size"][-2:])
        self.seconds = 0.0  # wall time spent in the teacher, for the cost report

    def train(self, mode: bool = True):  # the teacher never leaves eval mode
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.inference_mode()
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.renorm:
            x = x * self.scale + self.shift
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        with autocast(x.device, self.bf16):
            return self.teacher(x.contiguous(memory_format=self.memory)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self._logits(x.detach())
        self.seconds += time.perf_counter() - t0
        # clone outside inference mode: autograd may save it (soft KL needs the target in backward)
        return out.clone()


class DistillationLoss(nn.Module):
    def __init__(self, base: nn.Module, teacher: TeacherAdapter | None, kind: str, alpha: float, tau: float):
        super().__init__()
        if kind not in ("hard", "soft", "none"):
            raise ValueError(kind)
        if kind != "none" and teacher is None:
            raise ValueError("distillation needs a teacher")
        self.base, self.teacher, self.kind, self.alpha, self.tau = base, teacher, kind, alpha, tau

    def forward(self, inputs: torch.Tensor, outputs, labels: torch.Tensor) -> torch.Tensor:
        cls, dist = outputs if isinstance(outputs, (tuple, list)) else (outputs, None)
        base_loss = self.base(cls, labels)
        if self.kind == "none":
            return base_loss if dist is None else (base_loss + self.base(dist, labels)) / 2
        if dist is None:
            raise ValueError("distillation needs a student with a distillation head (timm *_distilled_* model)")
        t = self.teacher(inputs)
        if self.kind == "hard":
            kd = F.cross_entropy(dist, t.argmax(dim=1))
        else:
            T = self.tau
            kd = (
                F.kl_div(F.log_softmax(dist / T, dim=1), F.log_softmax(t / T, dim=1), reduction="sum", log_target=True)
                * (T * T)
                / dist.numel()
            )
        return base_loss * (1 - self.alpha) + kd * self.alpha


def base_criterion(smoothing: float, mixing: bool) -> nn.Module:
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if mixing:  # mixup/cutmix produce soft targets that already include the smoothing
        return SoftTargetCrossEntropy()
    if smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=smoothing)
    return nn.CrossEntropyLoss()
