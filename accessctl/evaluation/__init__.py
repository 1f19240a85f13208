"""Figures: pair and clip lists, verification and presentation-attack metrics,
benchmarks. Never imported by the kiosk."""
