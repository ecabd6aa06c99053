"""Conversion of trained models to the ONNX files that serving/ loads."""
