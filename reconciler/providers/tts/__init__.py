"""The Things Stack: reference tables (generated) and the HTTP API v3 provider."""
