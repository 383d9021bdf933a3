"""The models behind the steps: one Protocol per role, one file per integration.

Backends do not import Prefect, so they can be used and tested alone. Tasks get
them from ``backends.registry``, never by importing a concrete class.
"""
