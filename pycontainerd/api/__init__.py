"""Python bindings for containerd's wire API, generated from api/ by `python -m pycontainerd.api.generate` (everything here but generate.py)."""
