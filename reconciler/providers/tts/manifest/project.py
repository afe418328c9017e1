"""What the TTS manifest kinds resolve into: the stack's `Target` and its applications, devices
and gateways (`TtsProject`, kept on the loaded project's `extensions["tts"]`).

Resources carry `fields`: The Things Stack field path (`ids.dev_eui`, `root_keys.app_key.key`,
`mac_settings.rx1_delay`, `formatters.up_formatter`, ...) -> value in normal form (see
`reconciler.providers.tts.schema`: canonical enum names, ints for numeric enums, upper-case hex,
`Secret` for secret values). A path is present only when the manifests set it (after defaults and
profiles); a value of None means the manifests set it to `null` (clear it). Paths left out are
never to be changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, NoReturn

from reconciler.diagnostics import Diagnostic, Location, ManifestError
from reconciler.manifest.files import ManifestTree
from reconciler.manifest.project import Located, Project, Source
from reconciler.manifest.secrets import SecretContext, SecretError, resolve
from reconciler.providers.tts.servers import API_PREFIX, DEFAULT_USER_AGENT
from reconciler.resources import Secret
from reconciler.sinks import Sink

ServerRole = Literal["identity", "network", "application", "join"]
SERVER_ROLES: tuple[ServerRole, ...] = ("identity", "network", "application", "join")


@dataclass(frozen=True, slots=True)
class OwnerRef:
    kind: Literal["user", "organization"]
    id: str

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


@dataclass(frozen=True)
class Target(Located):
    """Where and how to talk to The Things Stack, and how managed resources are marked."""

    provider: ClassVar[str] = "tts"  # the provider that manages this target
    stack: str  # the ownership marker value
    ownership_key: str  # attribute key carrying it
    server_urls: Mapping[ServerRole, str]  # root URLs (no /api/v3), per server
    api_key: Mapping[str, str]  # {"env": NAME} or {"file": path}: resolved only when needed
    ca_bundle: Path | None = None
    user_agent: str = DEFAULT_USER_AGENT
    default_owner: OwnerRef | None = None
    prune: bool = False
    change_threshold: float = 0.3
    source: Source = field(default_factory=lambda: Location("."))
    base_dir: Path = field(default_factory=Path.cwd)
    # Where the API key file may be read from (None: the current directory).
    tree: ManifestTree | None = None
    api_key_source: Callable[[], Location] | None = None  # `api_key` in the Stack document
    # Commands API key secrets may be delivered to, by name (`secret_commands`).
    secret_commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def with_url_override(self, url: str) -> Target:
        """All four servers at one root URL (`--url`, `RECONCILER_TTS_URL`)."""
        root = url.rstrip("/").removesuffix(API_PREFIX)
        return replace(self, server_urls=dict.fromkeys(SERVER_ROLES, root))

    def api_base(self, role: ServerRole) -> str:
        """Base URL for HTTP API calls to one server, e.g. `https://host/api/v3`."""
        return self.server_urls[role] + API_PREFIX

    def resolve_api_key(self, environ: Mapping[str, str] | None = None) -> Secret:
        """The API key, read from its reference now (validate never needs it). A key that
        cannot be sent in an HTTP header is a located manifest error, like a missing one."""
        context = SecretContext(base_dir=self.base_dir)
        if environ is not None:
            context.environ = environ
        if self.tree is not None:
            context.tree = self.tree
        try:
            key = resolve(dict(self.api_key), context, str.strip)
        except SecretError as error:
            self._api_key_error(str(error))
        problem = api_key_problem(key.reveal())
        if problem is not None:
            self._api_key_error(f"the key from {key.source} {problem}")
        return key

    def _api_key_error(self, message: str) -> NoReturn:
        location = self.api_key_source() if callable(self.api_key_source) else self.location
        raise ManifestError([Diagnostic(location, f"API key: {message}", code="api-key")])


def api_key_problem(key: str) -> str | None:
    """Why `key` cannot be an API key sent as a bearer token, if it cannot (never the key)."""
    for index, char in enumerate(key):
        if char in "\r\n":
            return f"contains a line break (at character {index + 1})"
        if not " " <= char <= "~":
            return f"contains a character that is not printable ASCII (at character {index + 1})"
        if char == " ":
            return f"contains a space (at character {index + 1})"
    return None


@dataclass(slots=True)
class PackageAssociation(Located):
    """An application package on one FPort: an application's default association
    (`device_id` None) or a device's own."""

    application_id: str
    device_id: str | None
    f_port: int
    fields: dict[str, Any]  # `package_name`, `data` (a JSON object; top-level Secrets)
    source: Source


@dataclass(slots=True)
class Device(Located):
    """One end device, with application defaults and its profile already applied."""

    application_id: str
    device_id: str
    fields: dict[str, Any]  # TTS EndDevice field path -> value (see module doc)
    source: Source
    profile: str | None = None
    # None: not declared (left alone); a list: all of the device's associations.
    packages: list[PackageAssociation] | None = None

    def get(self, path: str, default: Any = None) -> Any:
        return self.fields.get(path, default)

    @property
    def dev_eui(self) -> str | None:
        value: str | None = self.fields.get("ids.dev_eui")
        return value

    @property
    def join_eui(self) -> str | None:
        value: str | None = self.fields.get("ids.join_eui")
        return value

    @property
    def supports_join(self) -> bool:
        return bool(self.fields.get("supports_join"))


@dataclass(slots=True)
class ApiKey(Located):
    """An API key of an application, gateway or organization, by name."""

    entity_kind: Literal["application", "gateway", "organization"]
    entity_id: str
    name: str
    rights: tuple[str, ...]  # canonical names, sorted, unique
    sink: Sink
    source: Source
    expires_at: str | None = None  # `YYYY-MM-DDTHH:MM:SSZ`; None: never expires
    rotate_after_days: int | None = None


@dataclass(slots=True)
class Collaborator(Located):
    """A user or organization holding rights on an application, gateway or organization."""

    entity_kind: Literal["application", "gateway", "organization"]
    entity_id: str
    member: OwnerRef
    rights: tuple[str, ...]  # canonical names, sorted, unique
    source: Source


@dataclass(slots=True)
class Organization(Located):
    organization_id: str
    owner: OwnerRef  # the user it is created under
    fields: dict[str, Any]  # Organization field path -> value
    source: Source
    # None: not declared (left alone); a list: all of them.
    collaborators: list[Collaborator] | None = None
    api_keys: list[ApiKey] | None = None


@dataclass(slots=True)
class Webhook(Located):
    application_id: str
    webhook_id: str
    fields: dict[str, Any]  # ApplicationWebhook field path -> value; `headers` maps to Secrets
    source: Source


@dataclass(slots=True)
class PubSub(Located):
    application_id: str
    pub_sub_id: str
    fields: dict[str, Any]  # ApplicationPubSub JSON path (`mqtt.password`) -> value or Secret
    source: Source


@dataclass(slots=True)
class Application(Located):
    application_id: str
    owner: OwnerRef
    fields: dict[str, Any]  # Application field path -> value
    source: Source
    # AS link (`default_formatters.*` paths) when the manifest sets default formatters.
    link: dict[str, Any] | None = None
    webhooks: list[Webhook] = field(default_factory=list)
    pubsubs: list[PubSub] = field(default_factory=list)
    # Default associations; None: not declared (left alone); a list: all of them.
    packages: list[PackageAssociation] | None = None
    profiles: tuple[str, ...] = ()
    # None: not declared (left alone); a list: all of them.
    api_keys: list[ApiKey] | None = None
    collaborators: list[Collaborator] | None = None


@dataclass(slots=True)
class Gateway(Located):
    gateway_id: str
    owner: OwnerRef
    fields: dict[str, Any]  # Gateway field path -> value
    source: Source
    api_keys: list[ApiKey] | None = None
    collaborators: list[Collaborator] | None = None


PROVIDER = "tts"


@dataclass
class TtsProject:
    """Everything the TTS manifest kinds declare, validated and resolved."""

    target: Target | None = None
    organizations: list[Organization] = field(default_factory=list)
    applications: list[Application] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)

    def application(self, application_id: str) -> Application | None:
        for application in self.applications:
            if application.application_id == application_id:
                return application
        return None

    def api_keys(self) -> list[ApiKey]:
        found = [k for o in self.organizations for k in o.api_keys or []]
        found += [k for a in self.applications for k in a.api_keys or []]
        return found + [k for g in self.gateways for k in g.api_keys or []]

    def collaborators(self) -> list[Collaborator]:
        found = [c for o in self.organizations for c in o.collaborators or []]
        found += [c for a in self.applications for c in a.collaborators or []]
        return found + [c for g in self.gateways for c in g.collaborators or []]

    def counts(self) -> dict[str, int]:
        # The kinds added later are counted only when declared: summaries read as before.
        counts = {
            "organizations": len(self.organizations),
            "applications": len(self.applications),
            "webhooks": sum(len(a.webhooks) for a in self.applications),
            "pubsubs": sum(len(a.pubsubs) for a in self.applications),
            "package associations": sum(len(a.packages or ()) for a in self.applications)
            + sum(len(d.packages or ()) for d in self.devices),
            "devices": len(self.devices),
            "gateways": len(self.gateways),
            "API keys": len(self.api_keys()),
            "collaborators": len(self.collaborators()),
        }
        optional = (
            "organizations",
            "pubsubs",
            "package associations",
            "API keys",
            "collaborators",
        )
        return {k: v for k, v in counts.items() if v or k not in optional}


def tts_project(project: Project) -> TtsProject:
    """The TTS part of a loaded project (empty when the manifests declare none)."""
    found = project.extensions.get(PROVIDER)
    return found if isinstance(found, TtsProject) else TtsProject()
