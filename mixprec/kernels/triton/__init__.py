"""Triton kernels, one file per kernel, each with a pure-PyTorch reference."""
