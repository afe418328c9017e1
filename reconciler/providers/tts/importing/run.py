"""`reconciler import` for The Things Stack: read (live or from files), build, write."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from reconciler.importer.output import ImportFailure, check_output_dir
from reconciler.importer.report import ImportReport
from reconciler.provider import ProgressCallback
from reconciler.providers.tts.client import RetryPolicy, ServerURLs, TTSClient
from reconciler.providers.tts.importing.live import Selection, read_live
from reconciler.providers.tts.importing.manifests import BuildOptions, build_tree
from reconciler.providers.tts.manifest import types as t
from reconciler.providers.tts.servers import API_PREFIX

API_KEY_ENV = "TTS_API_KEY"


@dataclass
class ImportOptions:
    out: Path
    stack: str = "imported"
    url: str | None = None
    selection: Selection = field(default_factory=Selection)
    from_file: Path | None = None
    owner: str | None = None  # `user:ID` or `organization:ID`
    overwrite: bool = False
    # Each device's own package associations (one more request per device).
    device_packages: bool = True
    parallelism: int = 16
    retries: int = 8
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    transport: httpx.AsyncBaseTransport | None = None  # tests: the in-process emulator
    progress: ProgressCallback | None = None


def parse_owner(text: str) -> tuple[str, str]:
    kind, _, owner_id = text.partition(":")
    if kind not in ("user", "organization") or not owner_id:
        raise ImportFailure(f"--owner {text!r}: give `user:ID` or `organization:ID`")
    return kind, owner_id


def _check(options: ImportOptions) -> tuple[str | None, tuple[str, str] | None]:
    try:
        t.parse_plain_id(options.stack, "stack name")
    except ValueError as error:
        raise ImportFailure(f"--stack: {error}") from None
    owner = parse_owner(options.owner) if options.owner else None
    url = options.url.rstrip("/").removesuffix(API_PREFIX) if options.url else None
    selection = options.selection
    if options.from_file is None:
        if url is None:
            raise ImportFailure("--url is required (or RECONCILER_TTS_URL): the server to read")
        if not (
            selection.application_ids
            or selection.gateway_ids
            or selection.organization_ids
            or selection.everything
        ):
            raise ImportFailure(
                "nothing to import: pass --application ID, --gateway ID, --organization ID or --all"
            )
    else:
        if url is None:
            raise ImportFailure(
                "--url is required (or RECONCILER_TTS_URL): the server the manifests will manage"
            )
        if (
            len(selection.application_ids) != 1
            or selection.gateway_ids
            or selection.organization_ids
            or selection.everything
        ):
            raise ImportFailure("--from-file needs exactly one --application ID (and no others)")
        if owner is None:
            raise ImportFailure(
                "--from-file needs --owner user:ID (or organization:ID): who owns the "
                "application on a new server"
            )
    check_output_dir(options.out, overwrite=options.overwrite)
    return url, owner


async def run_import(options: ImportOptions) -> ImportReport:
    """Read, build and write the manifest tree; nothing is written to any server."""
    url, owner = _check(options)
    assert url is not None
    if options.from_file is not None:
        from reconciler.providers.tts.importing.files import read_file

        snapshot = read_file(options.from_file, options.selection.application_ids[0])
    else:
        api_key = options.environ.get(API_KEY_ENV)
        if not api_key:
            raise ImportFailure(f"set {API_KEY_ENV} to an API key that can read what to import")
        client = TTSClient(
            ServerURLs.single(url),
            api_key,
            transport=options.transport,
            max_connections=max(4, options.parallelism),
            retry=RetryPolicy(attempts=max(1, options.retries)),
        )
        try:
            snapshot = await read_live(
                client,
                options.selection,
                device_packages=options.device_packages,
                parallelism=options.parallelism,
                progress=options.progress,
            )
        finally:
            await client.aclose()
    owner = owner or snapshot.owner
    if owner is None:
        raise ImportFailure(
            "the API key belongs to no user or organization: pass --owner user:ID (or "
            "organization:ID) to own the applications and gateways on a new server"
        )
    tree = build_tree(snapshot, BuildOptions(stack=options.stack, url=url, owner=owner))
    tree.write(options.out, overwrite=options.overwrite)
    return snapshot.report
