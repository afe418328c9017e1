"""Local emulators of the clouds reconciler manages (for tests, CI and demos).

The platform, shared by every emulated API: `server` (uvicorn on uvloop: socket and port
errors, ready line, signals, TLS, with `tls` for self-signed certificates), `apis` (the registry
of emulated APIs and how one plugs in), `app` (the ASGI app around an API, with the admin
endpoints and `/healthz` of `admin`, routed by `routing`), `faults` (latency, jitter, failures,
dropped responses, rate limit via `ratelimit`), `state` (SQLite-backed tables), `config` (the
common options) and `requestlog` (`--request-log`). Each API lives in its own package: `tts`
(The Things Stack HTTP API v3) and `iothub` (the Azure IoT Hub service REST API).
"""
