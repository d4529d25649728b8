"""Interfaces shared by every step: config, paths, manifests/dataset references, caching keys, tracking."""
