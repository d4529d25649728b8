"""Shared settings for the KFP component wrappers. The container image comes from `NEXUS_IMAGE`
(set by `nexus-o compile` from the profile's `cluster.image`); kfp.local ignores it."""

import os

BASE_IMAGE = os.environ.get("NEXUS_IMAGE", "ghcr.io/nexus-o/nexus-o:0.1.0")
