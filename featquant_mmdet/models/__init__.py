"""Models built from ``layers``: backbones, classifiers, heads."""
