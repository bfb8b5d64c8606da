"""Compatibility name of :mod:`pymotor.backends.fast_schnet`."""
from .backends.fast_schnet import FastSchNetModel, UnsupportedModelError, read_schnet_weights

__all__ = ["FastSchNetModel", "UnsupportedModelError", "read_schnet_weights"]
