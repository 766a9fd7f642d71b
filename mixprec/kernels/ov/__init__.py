"""The OpenVINO runtime's kernels: quantize-dequantize stand-ins per unit (``modules``) that
OpenVINO's CPU plugin runs as integer GEMMs, and the probe of their exactness here
(``exactness``)."""
