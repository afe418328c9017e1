"""The Azure IoT Hub provider: device identities, twins and modules as code.

`models.py` (manifest kinds), `rules.py` (what the hub accepts), `manifest.py` (documents ->
target and devices), `differ.py` (keys, desired resources, the pure diff), `client.py` (SAS
tokens, pacing, retries, typed errors over `reconciler.transport`), `provider.py` (reads and
writes), `credentials.py` (device connection strings to a file).
"""
