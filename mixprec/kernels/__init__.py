"""Real quantized execution: Triton GPU kernels (``triton/``) and CPU modules (``cpu/``)."""
