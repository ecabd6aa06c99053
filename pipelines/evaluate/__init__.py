"""Offline evaluation: metrics, calibration, alert lead time and the VADER baseline."""
