"""pytest-edgehil: hardware-in-the-loop pytest plugins for quantized vision models on edge devices."""

__version__ = "0.1.0"
