"""Example briefs and their logo, installed as ``hyperlocal.examples`` (package data).

``python -m flows.flyer`` with no brief makes flyers from ``briefs/bakery.toml``
(``hyperlocal.resources.example_brief``), wherever the project is installed.
"""
