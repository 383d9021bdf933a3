"""Scripts that make the repository's example files: ``python -m scripts.<name>``."""
