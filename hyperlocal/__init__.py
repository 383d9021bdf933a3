"""Hyperlocal: flyers for local businesses and events, from a short brief.

This package is the foundation layer; it imports no Prefect and no model code, so
every layer above can use it. At the top: ``settings``, the domain ``models`` and
the ``errors``, with small shared helpers (``colors``, ``files``, ``pictures``,
``redaction``, ``resources``, ``text``). One subpackage per concern: ``briefs``
(reading briefs and sets of them), ``layout`` (formats, designs, contrast, fonts,
Typst typesetting), ``modelstore`` (where models live, pulling and verifying them,
model servers) and ``prompts`` (token budgets, fitting prompts to CLIP).
"""

__version__ = "0.1.0"
