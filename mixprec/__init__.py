"""mixprec: hardware-aware mixed-precision search for Vision Transformers."""

from mixprec.deploy import deploy
from mixprec.quant import Plan, QuantSpec, TokenSplit, load_plan

__version__ = "0.1.0"

__all__ = ["Plan", "QuantSpec", "TokenSplit", "deploy", "load_plan", "__version__"]
