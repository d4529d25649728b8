"""Nexus-O model package: plain torch modules on transformers classes. No training loop, no DeepSpeed.

from model.builders import build_model
from model.processor import NexusOProcessor
"""
