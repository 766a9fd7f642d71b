"""Write the shipped analytic latency tables (``mixprec/cost_models/tables``): the A100,
A15-class and Xeon-class roofline models for the embedded model and the timm models users
bring most, at batch 1 and 8. ``python scripts/build_analytic_tables.py``; no weights are needed."""

from __future__ import annotations

import torch

from mixprec import models, quant
from mixprec.cost_models import analytic_table
from mixprec.cost_models.store import shipped_dir, table_filename

MODELS = {"mnist-vit": (1, 28, 28), "deit_small_patch16_224": (3, 224, 224),
          "deit_base_patch16_224": (3, 224, 224), "vit_base_patch16_224": (3, 224, 224),
          "swin_tiny_patch4_window7_224": (3, 224, 224)}
DEVICES = ("a100", "a15", "xeon")
BATCHES = (1, 8)


def main() -> None:
    folder = shipped_dir()
    for name, shape in MODELS.items():
        model = models.load(name, pretrained=name in models.EMBEDDED_MODELS)
        units = quant.discover_units(model, torch.zeros(1, *shape))
        for device in DEVICES:
            for batch in BATCHES:
                table = analytic_table(units, device, batch, model_name=name)
                path = table.save(folder / table_filename(table))
                print(f"wrote {path}")


if __name__ == "__main__":
    main()
