"""The Typst flyer template, installed as ``hyperlocal.templates`` (package data).

Found with ``importlib.resources`` (``hyperlocal.resources.flyer_template``), so a
wheel or a non-editable install has it as well as a source checkout.
"""
