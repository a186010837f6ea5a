"""Measurement: latency runs, energy integration, the energy meter, accuracy metrics and datasets."""
