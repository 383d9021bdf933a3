"""Hyperlocal: flyers for local businesses and events, from a short brief.

This package is the foundation layer: settings, domain models, errors and the
pure helpers (formats, assets, files, typesetting). It imports no Prefect and no
model code, so every layer above can use it.
"""

__version__ = "0.1.0"
