"""Pipeline steps: one folder per step (`core.py` library code + `component.py` thin KFP wrapper)."""
