"""The flows people run: ``python -m flows.flyer`` for one brief."""
