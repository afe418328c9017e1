"""Manifests: YAML and CSV files -> located documents -> validated desired resources."""
