"""Layers built on ``ops``: quantizing convolutions, normalisation, and the conversion utility."""
