"""The distillation loss against hand computations on small fixed tensors."""

import math

import pytest
import torch
import torch.nn as nn

from vitc.compress.losses import DistillationLoss, TeacherAdapter

CLS = [[2.0, 0.0, 1.0], [0.0, 1.0, -1.0]]
DIST = [[0.5, 1.5, 0.0], [1.0, 0.0, 2.0]]
TEACH = [[0.0, 3.0, 1.0], [0.5, 0.0, 2.5]]  # teacher argmax: [1, 2]
Y = [0, 1]


def lse(row):
    return math.log(sum(math.exp(v) for v in row))


def ce(row, k):
    return lse(row) - row[k]


class FixedTeacher(nn.Module):
    """Returns fixed logits regardless of input; records whether grad mode was on."""

    def __init__(self, logits):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.logits = torch.tensor(logits)
        self.grad_enabled = None

    def forward(self, x):
        self.grad_enabled = torch.is_grad_enabled()
        return self.logits * self.w


PRE = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "input_size": [3, 4, 4]}


def make(kind, alpha=0.5, tau=1.0):
    t = FixedTeacher(TEACH)
    adapter = TeacherAdapter(t, PRE, PRE, bf16=False)
    return DistillationLoss(nn.CrossEntropyLoss(), adapter, kind, alpha, tau), t


def inputs():
    cls = torch.tensor(CLS, requires_grad=True)
    dist = torch.tensor(DIST, requires_grad=True)
    return torch.zeros(2, 3, 4, 4), (cls, dist), torch.tensor(Y)


@pytest.mark.parametrize("alpha", [0.5, 0.2])
def test_hard_matches_hand(alpha):
    loss_fn, _ = make("hard", alpha)
    x, out, y = inputs()
    got = loss_fn(x, out, y).item()
    base = (ce(CLS[0], 0) + ce(CLS[1], 1)) / 2
    kd = (ce(DIST[0], 1) + ce(DIST[1], 2)) / 2
    assert got == pytest.approx((1 - alpha) * base + alpha * kd, rel=1e-6)


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_soft_matches_hand_with_deit_reduction(tau):
    loss_fn, _ = make("soft", 0.5, tau)
    x, out, y = inputs()
    got = loss_fn(x, out, y).item()
    kl = 0.0
    for s_row, t_row in zip(DIST, TEACH):
        ls = [v / tau - lse([u / tau for u in s_row]) for v in s_row]
        lt = [v / tau - lse([u / tau for u in t_row]) for v in t_row]
        kl += sum(math.exp(b) * (b - a) for a, b in zip(ls, lt))
    kd = kl * tau * tau / (2 * 3)  # DeiT: summed KL / numel(batch * classes)
    base = (ce(CLS[0], 0) + ce(CLS[1], 1)) / 2
    assert got == pytest.approx(0.5 * base + 0.5 * kd, rel=1e-6)


def test_none_trains_both_heads_on_the_labels():
    # the fair control: the deployed output averages the two heads, so both learn the labels (issue 34)
    loss_fn, t = make("none")
    x, out, y = inputs()
    got = loss_fn(x, out, y)
    cls_ce, dist_ce = (ce(CLS[0], 0) + ce(CLS[1], 1)) / 2, (ce(DIST[0], 0) + ce(DIST[1], 1)) / 2
    assert got.item() == pytest.approx((cls_ce + dist_ce) / 2, rel=1e-6)
    got.backward()
    assert out[0].grad.abs().sum() > 0 and out[1].grad.abs().sum() > 0
    assert t.grad_enabled is None  # the teacher is never run


def test_none_without_a_distillation_head_is_the_class_loss():
    loss_fn, _ = make("none")
    x, out, y = inputs()
    assert loss_fn(x, out[0], y).item() == pytest.approx((ce(CLS[0], 0) + ce(CLS[1], 1)) / 2, rel=1e-6)


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_teacher_gets_no_gradient_and_student_does(kind):
    loss_fn, t = make(kind)
    x, out, y = inputs()
    loss_fn(x, out, y).backward()
    assert t.w.grad is None and t.grad_enabled is False
    assert out[0].grad is not None and out[0].grad.abs().sum() > 0
    assert out[1].grad is not None and out[1].grad.abs().sum() > 0


def test_teacher_stays_in_eval_mode():
    t = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(48, 3))
    adapter = TeacherAdapter(t, PRE, PRE, bf16=False)
    adapter.train()
    assert not t.training


def test_adapter_renormalises_to_the_teacher_stats():
    class Echo(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    s_pre = {"mean": [0.5] * 3, "std": [0.25] * 3, "input_size": [3, 4, 4]}
    t_pre = {"mean": [0.0] * 3, "std": [1.0] * 3, "input_size": [3, 4, 4]}
    x = torch.full((1, 3, 4, 4), 2.0)  # student-normalised pixel 2.0 -> raw 2*0.25+0.5 = 1.0
    assert torch.allclose(TeacherAdapter(Echo(), s_pre, t_pre, False)(x), torch.ones(1, 3))


def test_student_two_heads_in_training_average_in_eval(tiny_student):
    from vitc.compress.trainer import head_logits

    m = tiny_student
    m.set_distilled_training(True)
    x = torch.randn(2, 3, 32, 32)
    m.train()
    out = m(x)
    assert isinstance(out, tuple) and len(out) == 2 and out[0].shape == (2, 10)
    m.eval()
    with torch.no_grad():
        avg = m(x)
        h = head_logits(m, x)
    assert torch.allclose(avg, (h["cls"] + h["dist"]) / 2, atol=1e-6)
    assert not torch.allclose(h["cls"], h["dist"])
