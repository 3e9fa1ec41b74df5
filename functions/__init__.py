"""The six functions, one folder each: func.yaml and a thin handler module (main.py)."""
