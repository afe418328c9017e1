"""Local emulators of the clouds reconciler manages (for tests, CI and demos).

The platform, shared by every emulated API: `server` (uvicorn runner: ready line, signals),
`apis` (the registry of emulated APIs and how one plugs in), `app` (the ASGI app around an API,
with the admin endpoints of `admin`), `faults` (latency, jitter, failures, dropped responses,
rate limit via `ratelimit`), `state` (SQLite-backed tables), `config` (the common options).
Each API lives in its own package: `tts` (The Things Stack HTTP API v3).
"""
