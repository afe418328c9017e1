"""The Things Stack HTTP API v3, emulated."""
