"""The model store: where models live here, pulling and verifying them, model servers."""
