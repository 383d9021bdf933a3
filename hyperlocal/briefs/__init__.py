"""Briefs: reading them from files and flags, sets of briefs for a batch, their assets."""
