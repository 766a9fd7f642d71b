"""The ONNX Runtime runtime's kernels: ONNX graph pieces per unit (``ops``, ``modules``) and
the probe of its exact int8 paths (``exactness``)."""
