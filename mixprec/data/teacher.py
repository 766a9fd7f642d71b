"""A small convolutional teacher for distilling the embedded MNIST ViTs (DeiT's recipe).

A ViT trained from scratch on 4,000 digits lacks the locality prior a CNN has; DeiT's hard
distillation passes it on: the student also fits the teacher's label of each augmented image.
The teacher is trained on the same training digits, so no data is added.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.data.augment import augment


def digit_cnn() -> nn.Sequential:
    """Five 3x3 convolutions (32-32 | 64-64 | 128 channels, batch norm, ReLU, two 2x2 max
    pools), global average pooling, one linear classifier."""
    def conv(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*conv(1, 32), *conv(32, 32), nn.MaxPool2d(2),
                         *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2),
                         *conv(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def train_teacher(images: torch.Tensor, labels: torch.Tensor, epochs: int,
                  gen: torch.Generator, batch_size: int = 64, lr: float = 3e-3) -> nn.Module:
    """Train ``digit_cnn`` on augmented ``images`` (AdamW, one-cycle cosine schedule);
    return it in eval mode."""
    teacher = digit_cnn()
    opt = torch.optim.AdamW(teacher.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * math.ceil(len(images) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    teacher.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for idx in order.split(batch_size):
            loss = F.cross_entropy(teacher(augment(images[idx], gen)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return teacher.eval()


def hard_distillation_loss(logits: torch.Tensor, labels: torch.Tensor,
                           teacher_labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """DeiT's hard distillation with one head: the mean of the cross-entropy with the true
    labels (smoothed) and with the teacher's labels."""
    return 0.5 * (F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
                  + F.cross_entropy(logits, teacher_labels))
