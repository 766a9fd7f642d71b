"""Build the real quantized model from a Plan."""

from mixprec.deploy.build import DeployReport, deploy

__all__ = ["DeployReport", "deploy"]
