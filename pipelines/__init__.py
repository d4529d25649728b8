"""The nexus-o DAG (built from the stage registry), profiles and the `nexus-o` CLI."""
