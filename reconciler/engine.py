"""Runs the five hops: load manifests -> desired resources -> live state -> plan -> apply.

No printing here: results go back to the CLI, which renders them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.desired import desired_state
from reconciler.diagnostics import Diagnostic, ManifestError, ReconcilerError
from reconciler.manifest.load import load_manifests
from reconciler.manifest.project import Project, Target
from reconciler.plan.model import ApplyReport, Plan, ResourceChange, ResourceResult
from reconciler.providers.tts.client import RetryPolicy, ServerURLs, TTSClient
from reconciler.providers.tts.planner import LiveState, Planner, PlanOptions
from reconciler.providers.tts.provider import ProgressCallback, TTSProvider
from reconciler.redact import Redactor
from reconciler.resources import DesiredState, Secret
from reconciler.transport import HttpLimits

if TYPE_CHECKING:
    import httpx

URL_ENV = "RECONCILER_TTS_URL"


@dataclass
class RunOptions:
    paths: Sequence[Path]
    url: str | None = None
    prune: bool | None = None  # None: the Stack's `safety.prune`
    allow_replace: bool = False
    rotate_keys: bool = False
    force: bool = False
    parallelism: int = 16
    retries: int = 8  # tries per request on transient failures
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    limits: HttpLimits = field(default_factory=HttpLimits)  # deadlines and caps per run
    transport: httpx.AsyncBaseTransport | None = None  # tests: in-process emulator
    progress: ProgressCallback | None = None


@dataclass
class Loaded:
    project: Project
    target: Target
    desired: DesiredState
    warnings: list[Diagnostic]


@dataclass
class PlanRun:
    plan: Plan
    loaded: Loaded
    live: LiveState
    requests: int


def load(options: RunOptions) -> Loaded:
    url = options.url or options.environ.get(URL_ENV) or None
    result = load_manifests(options.paths, environ=options.environ, url_override=url)
    if result.has_errors:
        raise ManifestError(result.diagnostics)
    project = result.project
    if project.target is None:
        raise ReconcilerError(
            "no Stack document in the manifests: it names the stack and the server to manage"
        )
    target = project.target
    if url:
        target = target.with_url_override(url)
    return Loaded(
        project=project,
        target=target,
        desired=desired_state(project, target),
        warnings=[d for d in result.diagnostics if d.severity == "warning"],
    )


def make_client(loaded: Loaded, options: RunOptions) -> TTSClient:
    target = loaded.target
    api_key = target.resolve_api_key(options.environ).reveal()
    urls = ServerURLs(
        identity=target.server_urls["identity"],
        network=target.server_urls["network"],
        application=target.server_urls["application"],
        join=target.server_urls["join"],
    )
    verify: str | bool = str(target.ca_bundle) if target.ca_bundle else True
    return TTSClient(
        urls,
        api_key,
        user_agent=target.user_agent,
        verify=verify,
        transport=options.transport,
        max_connections=max(4, options.parallelism),
        retry=RetryPolicy(attempts=max(1, options.retries)),
        limits=options.limits,
        redactor=Redactor([api_key, *secret_values(loaded.desired)]),
    )


def secret_values(desired: DesiredState) -> list[str]:
    """Every secret value the manifests hold (keys, webhook headers): what a server's echo of a
    request must never print."""
    values: list[str] = []
    for resource in desired.resources.values():
        for value in resource.fields.values():
            for item in value.values() if isinstance(value, dict) else (value,):
                if isinstance(item, Secret):
                    values.append(item.reveal())
    return values


def plan_options(loaded: Loaded, options: RunOptions, api_key: str) -> PlanOptions:
    prune = loaded.target.prune if options.prune is None else options.prune
    return PlanOptions(
        prune=prune,
        allow_replace=options.allow_replace,
        rotate_keys=options.rotate_keys,
        force=options.force,
        max_change_fraction=loaded.target.change_threshold,
        # Fingerprints in saved plans are keyed by the API key: without it they reveal nothing.
        digest_key=hashlib.sha256(b"reconciler-plan:" + api_key.encode()).digest(),
    )


async def make_plan(loaded: Loaded, client: TTSClient, options: RunOptions) -> PlanRun:
    api_key = loaded.target.resolve_api_key(options.environ).reveal()
    popts = plan_options(loaded, options, api_key)
    provider = TTSProvider(client, parallelism=options.parallelism, progress=options.progress)
    before = client.stats.requests
    live = await provider.read(loaded.desired, prune=popts.prune)
    plan = Planner(loaded.desired, live, popts).plan(
        target={role: url for role, url in loaded.target.server_urls.items()},
        manifests=[str(p) for p in options.paths],
    )
    plan.created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    plan.tool_version = __version__
    plan.estimated_seconds = estimate_seconds(plan, client, options.parallelism)
    for warning in loaded.warnings:
        plan.warnings.append(str(warning))
    return PlanRun(plan, loaded, live, client.stats.requests - before)


def estimate_seconds(plan: Plan, client: TTSClient, parallelism: int) -> float | None:
    """Time the plan's writes should take: spread over the parallel workers at the latency
    measured while reading, and no faster than a learned rate limit allows for the busiest
    shared bucket (device creations share one per application; the rest are per entity)."""
    if plan.write_requests == 0:
        return 0.0
    estimates = []
    if client.stats.mean_latency:
        estimates.append(plan.write_requests * client.stats.mean_latency / max(1, parallelism))
    profile = client.pacer.profile
    if profile is not None:
        creates: dict[str, int] = {}
        for change in plan.changes:
            if change.key.kind == "device" and any(
                s.server == "is" and s.operation == "create" for s in change.steps
            ):
                app = change.key.application_id
                creates[app] = creates.get(app, 0) + 1
        busiest = max(creates.values(), default=0)
        estimates.append(max(0.0, busiest - profile.capacity) / profile.per_second)
    return max(estimates) if estimates else None


async def apply_plan(
    run: PlanRun,
    client: TTSClient,
    options: RunOptions,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> ApplyReport:
    provider = TTSProvider(client, parallelism=options.parallelism, progress=options.progress)
    return await provider.apply(run.plan, run.loaded.desired, run.live, should_stop=should_stop)


def check_saved_plan(saved: Plan, fresh: Plan) -> tuple[Plan, list[ResourceResult]]:
    """Keep the saved plan's changes whose resources still look as they did when planned.

    A resource whose manifests or live versions changed since the plan is skipped and reported,
    never applied on the strength of a plan that no longer describes it.
    """
    fresh_by_key = {r.key: r for r in fresh.resources}
    kept: list[ResourceChange] = []
    stale: list[ResourceResult] = []
    for change in saved.changes:
        now = fresh_by_key.get(change.key)
        reason = ""
        if now is None:
            reason = "no longer planned (manifests or live state changed since the plan)"
        elif now.desired_digest != change.desired_digest:
            reason = "manifests changed since the plan"
        elif _versions(now) != _versions(change):
            reason = "changed on the server since the plan"
        elif now.action != change.action or [s.to_json() for s in now.steps] != [
            s.to_json() for s in change.steps
        ]:
            reason = "the changes needed differ from the plan"
        if reason or now is None:
            stale.append(ResourceResult(change.key, "skipped", change.action, reason))
        else:
            kept.append(now)
    return replace(fresh, resources=kept), stale


def _versions(change: ResourceChange) -> dict[str, Any]:
    return {k: v for k, v in change.live_versions.items() if v}
