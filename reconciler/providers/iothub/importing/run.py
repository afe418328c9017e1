"""`reconciler import --iothub`: read an Azure IoT Hub's registry, write IoT Hub manifests.

The connection string comes from `IOTHUB_CONNECTION_STRING` (as the IotHub document reads it by
default) and `RECONCILER_IOTHUB_URL` moves the endpoint (the emulator in CI), as for every
other command. Nothing is written to the hub.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from reconciler.diagnostics import Location
from reconciler.importer.output import ImportFailure, check_output_dir
from reconciler.importer.report import ImportReport
from reconciler.provider import ProgressCallback, ProviderContext
from reconciler.providers.iothub import rules
from reconciler.providers.iothub.importing.live import HubSnapshot, read_hub
from reconciler.providers.iothub.importing.manifests import BuildOptions, build_tree
from reconciler.providers.iothub.manifest import URL_ENV, ConnectionString, HubTarget
from reconciler.providers.iothub.models import DEFAULT_CONNECTION_ENV, DEFAULT_OWNERSHIP_TAG
from reconciler.providers.iothub.provider import create

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")  # the IotHub document's `name`
OWNERSHIP_TAG = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class HubImportOptions:
    out: Path
    name: str | None = None  # None: the ownership tag value the devices carry, else the hub's
    ownership_tag: str = DEFAULT_OWNERSHIP_TAG
    with_secrets: bool = False
    sku: str | None = None
    units: int | None = None
    overwrite: bool = False
    parallelism: int = 16
    retries: int = 8
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    transport: httpx.AsyncBaseTransport | None = None  # tests: the in-process emulator
    progress: ProgressCallback | None = None


def _check(options: HubImportOptions) -> tuple[ConnectionString, str | None]:
    if options.name is not None and not NAME.fullmatch(options.name):
        raise ImportFailure(
            f"--stack {options.name!r}: an IotHub name is 1-63 letters, digits, `.`, `_` or `-`, "
            "starting with a letter or digit"
        )
    if not OWNERSHIP_TAG.fullmatch(options.ownership_tag):
        raise ImportFailure("--ownership-tag: 1-64 letters, digits, `_` or `-`")
    if options.sku is not None and options.sku.upper() not in rules.SKUS:
        raise ImportFailure(f"--sku {options.sku!r}: one of {', '.join(rules.SKUS)}")
    if options.units is not None and not 1 <= options.units <= 200:
        raise ImportFailure("--units: 1 to 200")
    if options.units is not None and options.sku is None:
        raise ImportFailure("--units needs --sku (the units of which SKU)")
    text = options.environ.get(DEFAULT_CONNECTION_ENV)
    if not text:
        raise ImportFailure(
            f"set {DEFAULT_CONNECTION_ENV} to the connection string of a policy with "
            "RegistryRead and ServiceConnect (e.g. iothubowner)"
        )
    try:
        connection = ConnectionString.parse(text)
    except ValueError as error:
        raise ImportFailure(f"{DEFAULT_CONNECTION_ENV} {error}") from None
    if not rules.HOST_NAME.fullmatch(connection.host_name):
        raise ImportFailure(f"{DEFAULT_CONNECTION_ENV}: HostName is not a host name")
    url = (options.environ.get(URL_ENV) or "").strip() or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ImportFailure(f"{URL_ENV} must be an http:// or https:// URL")
    check_output_dir(options.out, overwrite=options.overwrite)
    return connection, url


async def run_import(options: HubImportOptions) -> ImportReport:
    """Read the hub, build and write the manifest tree; nothing is written to the hub."""
    connection, url = _check(options)
    sku = options.sku.upper() if options.sku else None
    target = HubTarget(
        stack=options.name or "imported",
        ownership_key=options.ownership_tag,
        host_name=connection.host_name,
        connection_string={"env": DEFAULT_CONNECTION_ENV},
        source=Location(f"env:{DEFAULT_CONNECTION_ENV}"),
        base_dir=Path.cwd(),
        sku=sku,
        units=options.units or 1,
        url=url,
    )
    context = ProviderContext(
        environ=options.environ,
        parallelism=options.parallelism,
        retries=options.retries,
        transport=options.transport,
        progress=options.progress,
    )
    provider = create(target, context)
    try:
        snapshot = await read_hub(
            provider,
            with_secrets=options.with_secrets,
            parallelism=options.parallelism,
            progress=options.progress,
        )
    finally:
        await provider.aclose()
    name = options.name or default_name(snapshot, options.ownership_tag)
    tree = build_tree(
        snapshot,
        BuildOptions(
            name=name,
            ownership_tag=options.ownership_tag,
            with_secrets=options.with_secrets,
            sku=sku,
            units=options.units,
        ),
    )
    tree.write(options.out, overwrite=options.overwrite)
    return snapshot.report


def default_name(snapshot: HubSnapshot, ownership_tag: str) -> str:
    """The name every device's ownership tag already carries (a tree that managed them all
    before); else the hub's own name (the first label of its host name)."""
    owners: set[object] = set()
    for device in snapshot.devices:
        tags = device.twin.get("tags")
        owners.add(tags.get(ownership_tag) if isinstance(tags, dict) else None)
    if len(owners) == 1:
        (owner,) = owners
        if isinstance(owner, str) and NAME.fullmatch(owner):
            return owner
    label = snapshot.host_name.split(".")[0]
    return label if NAME.fullmatch(label) else "imported"
