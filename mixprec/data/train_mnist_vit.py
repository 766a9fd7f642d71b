"""Reproducible training of the embedded MNIST ViTs:
``python -m mixprec.data.train_mnist_vit [--model mnist-vit | mnist-vit-small]``.

Trains on the 4,000 training digits with random affine augmentation, AdamW (no weight decay
on norms and biases), warm-up and cosine decay, label smoothing and, optionally, hard
distillation from a CNN teacher trained on the same digits (``--teacher-epochs``) and an
exponential moving average of the weights (shipped instead of the last step's) and patch
dropout (``--patch-drop``: each training image keeps a random subset of its patch tokens,
which makes an epoch several times cheaper; evaluation keeps them all) and
quantization-aware attention (``--quant-aware-attention 8``: training forwards round the
attention probabilities to static int8 attention's grid, straight-through); stores the
weights in float16 (the loader widens them to float32), reports the test accuracy of the
stored weights and writes the checkpoint into the package (``mixprec/data/mnist_vit.pt``
for ``mnist-vit``).
"""

from __future__ import annotations

import argparse
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.layers import PatchDropout
from timm.models.vision_transformer import VisionTransformer
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mixprec.data.attention_qat import quantized_attention_probabilities
from mixprec.data.augment import augment
from mixprec.data.mnist import mnist
from mixprec.data.mnist_vit import CHECKPOINTS, DEFAULT, build_mnist_vit, config_of
from mixprec.data.teacher import hard_distillation_loss, train_teacher


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy."""
    model.eval()
    with torch.inference_mode():
        return (model(images).argmax(-1) == labels).float().mean().item()


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight matrices and embeddings decay; norms and biases
    (one-dimensional parameters) do not."""
    decay, no_decay = [], []
    for param in model.parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def use_patch_dropout(model: VisionTransformer, fraction: float) -> None:
    """Make ``model`` drop ``fraction`` of its patch tokens (random per image, the class token
    kept) in training mode; in eval mode it keeps them all. 0 leaves it unchanged."""
    if fraction > 0:
        model.patch_drop = PatchDropout(fraction, num_prefix_tokens=model.num_prefix_tokens)


def train(name: str, epochs: int, batch_size: int, lr: float, seed: int,
          weight_decay: float = 0.05, label_smoothing: float = 0.1,
          init: dict[str, torch.Tensor] | None = None,
          ema_decay: float | None = None, teacher_epochs: int = 0,
          patch_drop: float = 0.0, attention_bits: int = 0) -> torch.nn.Module:
    """Train the embedded model ``name`` (from the weights ``init`` when given: a warm
    restart of the schedule); return it (float32, eval mode), or the exponential moving
    average of its weights over the steps when ``ema_decay`` is given. With
    ``teacher_epochs`` > 0, a CNN teacher is first trained that long on the same digits and
    the model learns by hard distillation from it. With ``patch_drop`` > 0, each training
    image drops that fraction of its patch tokens (the class token stays). With
    ``attention_bits`` > 0, training forwards round the attention probabilities to that
    symmetric grid (straight-through gradients); evaluation is exact."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = mnist("train")
    x_test, y_test = mnist("test")
    teacher = None
    if teacher_epochs > 0:
        start = time.time()
        teacher = train_teacher(x_train, y_train, teacher_epochs, gen)
        print(f"teacher: {teacher_epochs} epochs, test {evaluate(teacher, x_test, y_test):.4f} "
              f"({time.time() - start:.0f}s)", flush=True)
    model = build_mnist_vit(name)
    if init is not None:
        model.load_state_dict({k: v.float() for k, v in init.items()})
    use_patch_dropout(model, patch_drop)
    opt = torch.optim.AdamW(decay_groups(model, weight_decay), lr=lr)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total, warmup = epochs * steps_per_epoch, 3 * steps_per_epoch

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ema = None if ema_decay is None else AveragedModel(
        model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        start, loss_sum = time.time(), 0.0
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            images = augment(x_train[idx], gen)
            with (quantized_attention_probabilities(attention_bits) if attention_bits
                  else nullcontext()):
                logits = model(images)
            if teacher is None:
                loss = F.cross_entropy(logits, y_train[idx], label_smoothing=label_smoothing)
            else:
                with torch.no_grad():
                    teacher_labels = teacher(images).argmax(-1)
                loss = hard_distillation_loss(logits, y_train[idx], teacher_labels,
                                              label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.item()
        if epoch % 5 == 4 or epoch == epochs - 1:
            acc = evaluate(model, x_test, y_test)
            ema_acc = "" if ema is None else f" ema {evaluate(ema.module, x_test, y_test):.4f}"
            print(f"epoch {epoch + 1}/{epochs} loss {loss_sum / steps_per_epoch:.4f} "
                  f"test {acc:.4f}{ema_acc} ({time.time() - start:.1f}s/epoch)", flush=True)
    return (model if ema is None else ema.module).eval()


def stored_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights as shipped: float16 (half the package size; the loader widens them)."""
    return {k: v.detach().half() for k, v in model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=DEFAULT, help="mnist-vit or mnist-vit-small")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--ema", type=float, default=None,
                        help="ship the exponential moving average of the weights with this "
                             "per-step decay (e.g. 0.999)")
    parser.add_argument("--teacher-epochs", type=int, default=0,
                        help="first train a CNN teacher this many epochs on the same digits and "
                             "distill from it (DeiT's hard distillation); 0: no teacher")
    parser.add_argument("--patch-drop", type=float, default=0.0,
                        help="fraction of patch tokens each training image drops (patch "
                             "dropout: a cheaper epoch); 0: keep all")
    parser.add_argument("--quant-aware-attention", type=int, default=0, metavar="BITS",
                        help="round the attention probabilities of training forwards to the "
                             "symmetric BITS-bit grid of static int attention (straight-through "
                             "gradients), e.g. 8; 0: exact attention")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (mnist-vit was trained on 2, mnist-vit-small on 1; "
                             "each checkpoint's meta records its recipe)")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this checkpoint's weights (a warm restart: a second "
                             "warm-up and cosine cycle)")
    parser.add_argument("--out", type=Path, default=None,
                        help="checkpoint path (default: the package's file for --model)")
    args = parser.parse_args()
    if args.teacher_epochs < 0:
        parser.error(f"--teacher-epochs must be >= 0, got {args.teacher_epochs}")
    if not 0 <= args.patch_drop < 1:
        parser.error(f"--patch-drop must be in [0, 1), got {args.patch_drop}")
    if args.quant_aware_attention and not 2 <= args.quant_aware_attention <= 16:
        parser.error(f"--quant-aware-attention must be 0 or 2..16 bits, "
                     f"got {args.quant_aware_attention}")
    config = config_of(args.model)
    torch.set_num_threads(args.threads)
    out = args.out or Path(__file__).with_name(CHECKPOINTS[args.model])
    start = time.time()
    init, init_meta = None, None
    if args.init is not None:
        start_from = torch.load(args.init, map_location="cpu", weights_only=True)
        if start_from["config"] != config:
            raise SystemExit(f"{args.init} holds another architecture than {args.model}")
        init, init_meta = start_from["state_dict"], start_from.get("meta")
    model = train(args.model, args.epochs, args.batch_size, args.lr, args.seed,
                  args.weight_decay, args.label_smoothing, init, args.ema, args.teacher_epochs,
                  args.patch_drop, args.quant_aware_attention)
    minutes = (time.time() - start) / 60
    state = stored_state(model)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    acc = evaluate(model, *mnist("test"))
    meta = {"test_top1": acc, "train_minutes": round(minutes, 1), "torch": str(torch.__version__),
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
               if k != "out"}}
    if init_meta is not None:
        meta["init_meta"] = init_meta  # the run this one restarted from
    torch.save({"config": config, "state_dict": state, "meta": meta}, out)
    print(f"test top-1 {acc:.4f} (float16 weights); {minutes:.1f} min; wrote {out} "
          f"({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
