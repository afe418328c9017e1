"""Authentication, rights, rate-limit headers and X-Warning (FACTS §f, §d "Gotcha", §g)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulator.support import (
    INVALID_ARGUMENT,
    NOT_FOUND,
    PERMISSION_DENIED,
    RESOURCE_EXHAUSTED,
    UNAUTHENTICATED,
    TtsApi,
    b32,
    expect_error,
    expect_ok,
    make_api_key,
    new_key,
)

READ = "RIGHT_APPLICATION_DEVICES_READ"
WRITE = "RIGHT_APPLICATION_DEVICES_WRITE"
READ_KEYS = "RIGHT_APPLICATION_DEVICES_READ_KEYS"
WRITE_KEYS = "RIGHT_APPLICATION_DEVICES_WRITE_KEYS"
INSUFFICIENT = {"namespace": "pkg/auth/rights", "name": "insufficient_application_rights"}


@pytest.fixture
async def device(tts: TtsApi) -> dict[str, str]:
    """`app1` with OTAA `dev1` (root keys in the JS) and ABP `abp1` (session keys in NS/AS)."""
    await tts.create_application("app1")
    otaa = await tts.register_otaa_device("app1", "dev1")
    abp = await tts.register_abp_device("app1", "abp1")
    return {**otaa, "abp_dev_eui": abp["dev_eui"], "app_s_key": abp["app_s_key"]}


async def key_client(tts: TtsApi, *rights: str) -> httpx.AsyncClient:
    return tts.client_for(await tts.create_application_api_key("app1", list(rights)))


# ---------------------------------------------------------------------------------------------
# Authentication


async def test_missing_token_is_401(tts: TtsApi) -> None:
    """§f/§d no credentials: 401 (Unauthenticated, code 16)."""
    await tts.create_application("app1")
    response = await tts.client_for(None).get("/applications/app1", params={"field_mask": "name"})
    assert response.status_code == 401, response.text
    assert response.json()["code"] == UNAUTHENTICATED


async def test_unknown_token_is_401_api_key_not_found(tts: TtsApi) -> None:
    """§f a well-formed but unknown token gives 401 `api_key_not_found`."""
    await tts.create_application("app1")
    response = await tts.client_for(make_api_key()).get("/applications/app1")
    expect_error(
        response, code=UNAUTHENTICATED, namespace="pkg/identityserver", name="api_key_not_found"
    )


async def test_wrong_secret_is_401_invalid_authorization(tts: TtsApi) -> None:
    """§f a known key with a wrong secret gives 401 `invalid_authorization`."""
    await tts.create_application("app1")
    key_id = tts.admin_key.split(".")[1]
    forged = f"NNSXS.{key_id}.{b32(bytes(32))}"
    response = await tts.client_for(forged).get("/applications/app1")
    expect_error(response, code=UNAUTHENTICATED, name="invalid_authorization")


@pytest.mark.parametrize("token", ["garbage", "NNSXS.onlytwoparts", "a.b.c.d"])
async def test_malformed_token_is_400(tts: TtsApi, token: str) -> None:
    """§f a token not of the form `<type>.<id>.<secret>` gives 400 `pkg/auth:token`, not 401."""
    await tts.create_application("app1")
    response = await tts.client_for(token).get("/applications/app1")
    expect_error(response, code=INVALID_ARGUMENT, namespace="pkg/auth", name="token")


async def test_unsupported_scheme_is_401(tts: TtsApi) -> None:
    """§f an unsupported scheme gives 401 `unsupported_authorization`."""
    await tts.create_application("app1")
    anonymous = tts.client_for(None)
    response = await anonymous.get(
        "/applications/app1", headers={"Authorization": f"Basic {tts.admin_key}"}
    )
    expect_error(response, code=UNAUTHENTICATED, name="unsupported_authorization")


# ---------------------------------------------------------------------------------------------
# Application rights


async def test_devices_write_needed_for_every_registry(tts: TtsApi, device: dict[str, str]) -> None:
    """§f creating/updating/deleting devices in any registry needs DEVICES_WRITE; the error is
    403 `insufficient_application_rights` with `missing`."""
    reader = await key_client(tts, READ)
    ids = {k: device[k] for k in ("device_id", "dev_eui", "join_eui")}

    def masked(entity: dict[str, Any], path: str) -> dict[str, Any]:
        return {"end_device": {"ids": ids, **entity}, "field_mask": {"paths": [path]}}

    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        (
            "PUT",
            "/applications/app1/devices/dev1",
            {"end_device": {"name": "x"}, "field_mask": {"paths": ["name"]}},
        ),
        (
            "PUT",
            "/ns/applications/app1/devices/dev1",
            masked({"supports_class_c": True}, "supports_class_c"),
        ),
        (
            "PUT",
            "/as/applications/app1/devices/dev1",
            masked({"skip_payload_crypto": True}, "skip_payload_crypto"),
        ),
        (
            "PUT",
            "/js/applications/app1/devices/dev1",
            masked({"resets_join_nonces": True}, "resets_join_nonces"),
        ),
        ("POST", "/applications/app1/devices", {"end_device": {"ids": {"device_id": "dev9"}}}),
        ("DELETE", "/applications/app1/devices/dev1", None),
        ("DELETE", "/ns/applications/app1/devices/dev1", None),
    ]
    for method, url, body in attempts:
        expect_error(
            await reader.request(method, url, json=body),
            code=PERMISSION_DENIED,
            **INSUFFICIENT,
            attributes={"missing": [WRITE]},
        )
    expect_ok(await reader.get("/applications/app1/devices/dev1"))


async def test_reading_devices_needs_devices_read(tts: TtsApi, device: dict[str, str]) -> None:
    """§f reading IS devices needs DEVICES_READ."""
    info_only = await key_client(tts, "RIGHT_APPLICATION_INFO")
    expect_error(
        await info_only.get("/applications/app1/devices/dev1"),
        code=PERMISSION_DENIED,
        **INSUFFICIENT,
        attributes={"missing": [READ]},
    )


@pytest.mark.parametrize(
    ("registry", "mask"),
    [
        ("js", "root_keys"),
        ("js", "root_keys.app_key"),
        ("js", "root_keys.app_key.key"),
        ("js", "root_keys.nwk_key.key"),
        ("ns", "session"),
        ("ns", "session.keys"),
        ("ns", "session.keys.f_nwk_s_int_key.key"),
        ("as", "session"),
        ("as", "session.keys.app_s_key.key"),
    ],
)
async def test_reading_keys_needs_read_keys(
    tts: TtsApi, device: dict[str, str], registry: str, mask: str
) -> None:
    """§f/§g reading root or session keys needs DEVICES_READ_KEYS: the request is rejected with
    403 `insufficient_application_rights`, `missing: [READ_KEYS]`; keys are not silently omitted."""
    reader = await key_client(tts, READ)
    device_id = "dev1" if registry == "js" else "abp1"
    response = await reader.get(
        f"/{registry}/applications/app1/devices/{device_id}", params={"field_mask": mask}
    )
    expect_error(
        response, code=PERMISSION_DENIED, **INSUFFICIENT, attributes={"missing": [READ_KEYS]}
    )

    key_reader = await key_client(tts, READ, READ_KEYS)
    expect_ok(
        await key_reader.get(
            f"/{registry}/applications/app1/devices/{device_id}", params={"field_mask": mask}
        )
    )


async def test_root_key_id_and_dev_addr_need_only_devices_read(
    tts: TtsApi, client: httpx.AsyncClient, device: dict[str, str]
) -> None:
    """§g requesting only `root_keys.root_key_id` needs just DEVICES_READ; so do non-key session
    leaves."""
    ids = {k: device[k] for k in ("device_id", "dev_eui", "join_eui")}
    expect_ok(
        await client.put(
            "/js/applications/app1/devices/dev1",
            json={
                "end_device": {"ids": ids, "root_keys": {"root_key_id": "rk-1"}},
                "field_mask": {"paths": ["root_keys.root_key_id"]},
            },
        )
    )
    reader = await key_client(tts, READ)
    got = expect_ok(
        await reader.get(
            "/js/applications/app1/devices/dev1", params={"field_mask": "root_keys.root_key_id"}
        )
    )
    assert got["root_keys"] == {"root_key_id": "rk-1"}
    ns = expect_ok(
        await reader.get(
            "/ns/applications/app1/devices/abp1", params={"field_mask": "session.dev_addr"}
        )
    )
    assert ns["session"]["dev_addr"]


@pytest.mark.parametrize(
    ("registry", "device_id", "end_device", "path"),
    [
        ("js", "dev1", {"root_keys": {"app_key": {"key": new_key()}}}, "root_keys.app_key.key"),
        ("js", "dev1", {"root_keys": {"root_key_id": "rk"}}, "root_keys.root_key_id"),
        (
            "ns",
            "abp1",
            {"session": {"keys": {"f_nwk_s_int_key": {"key": new_key()}}}},
            "session.keys.f_nwk_s_int_key.key",
        ),
        (
            "as",
            "abp1",
            {"session": {"keys": {"app_s_key": {"key": new_key()}}}},
            "session.keys.app_s_key.key",
        ),
    ],
)
async def test_writing_keys_needs_write_keys(
    tts: TtsApi,
    device: dict[str, str],
    registry: str,
    device_id: str,
    end_device: dict[str, Any],
    path: str,
) -> None:
    """§f writing keys needs DEVICES_WRITE_KEYS (JS `root_keys.*` including `root_key_id`, NS
    `session.keys.*`, AS `app_s_key`)."""
    if device_id == "dev1":
        ids = {k: device[k] for k in ("device_id", "dev_eui", "join_eui")}
    else:
        ids = {"device_id": "abp1", "dev_eui": device["abp_dev_eui"]}
    body = {"end_device": {"ids": ids, **end_device}, "field_mask": {"paths": [path]}}
    url = f"/{registry}/applications/app1/devices/{device_id}"
    writer = await key_client(tts, READ, WRITE)
    expect_error(
        await writer.put(url, json=body),
        code=PERMISSION_DENIED,
        **INSUFFICIENT,
        attributes={"missing": [WRITE_KEYS]},
    )
    key_writer = await key_client(tts, READ, WRITE, WRITE_KEYS)
    expect_ok(await key_writer.put(url, json=body))


async def test_missing_or_foreign_application_is_403_for_non_admin(tts: TtsApi) -> None:
    """§d gotcha: for a non-admin caller a missing application, or one without rights, is 403
    `pkg/auth/rights:no_application_rights` ("no rights for application `{uid}`"), not 404."""
    await tts.create_application("app1")
    await tts.create_application("other")
    outsider = await key_client(tts, "RIGHT_APPLICATION_ALL")
    for app_id in ("other", "missing-app"):
        for url in (
            f"/applications/{app_id}/devices",
            f"/ns/applications/{app_id}/devices/dev1",
            f"/as/webhooks/{app_id}",
            f"/applications/{app_id}?field_mask=name",
        ):
            expect_error(
                await outsider.get(url),
                code=PERMISSION_DENIED,
                namespace="pkg/auth/rights",
                name="no_application_rights",
                message=f"no rights for application `{app_id}`",
            )


async def test_missing_application_is_404_for_admin(client: httpx.AsyncClient) -> None:
    """§d an IS admin holds universal rights, so a missing application is a plain 404."""
    expect_error(
        await client.get("/applications/missing-app", params={"field_mask": "name"}),
        code=NOT_FOUND,
        namespace="pkg/identityserver/store",
        name="application_not_found",
    )
    response = await client.get("/applications/missing-app/devices/dev1")
    assert response.status_code == 404, response.text


async def test_user_key_without_collaboration_gets_no_application_rights(tts: TtsApi) -> None:
    """§d same gotcha for a user API key: a user who is not a collaborator gets 403."""
    await tts.create_application("app1")
    await tts.create_user("carol")
    carol = tts.client_for(await tts.create_user_api_key("carol", ["RIGHT_ALL"]))
    expect_error(
        await carol.get("/applications/app1/devices"),
        code=PERMISSION_DENIED,
        namespace="pkg/auth/rights",
        name="no_application_rights",
    )


async def test_application_get_public_fields_exception(tts: TtsApi) -> None:
    """§d exception: an IS application GET asking only for public fields reaches the store, so a
    missing application is 404 even for a non-admin; an existing foreign one returns them."""
    await tts.create_application("app1")
    await tts.create_application("other")
    outsider = await key_client(tts, "RIGHT_APPLICATION_ALL")
    expect_error(
        await outsider.get("/applications/missing-app", params={"field_mask": "ids"}),
        code=NOT_FOUND,
        name="application_not_found",
    )
    public = expect_ok(
        await outsider.get("/applications/other", params={"field_mask": "ids,created_at"})
    )
    assert public["ids"] == {"application_id": "other"}


# ---------------------------------------------------------------------------------------------
# Headers


async def test_rate_limit_headers_absent_by_default(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§f rate limiting is off by default: no `X-Rate-Limit-*` headers, never `Retry-After`."""
    await tts.create_application("app1")
    for _ in range(5):
        response = await client.get("/applications/app1")
        expect_ok(response)
        assert not [h for h in response.headers if h.lower().startswith("x-rate-limit")]
        assert "retry-after" not in response.headers


class TestRateLimited:
    """§f with a profile configured: GCRA per method + entity + token, 429
    `pkg/ratelimit:rate_limit_exceeded`, `X-Rate-Limit-{Limit,Available,Reset,Retry}` headers
    (also on the 429), no `Retry-After`."""

    @pytest.fixture
    def emulator_config(self) -> dict[str, Any]:
        return {"rate_limit": (60, 3)}

    async def test_burst_then_429(self, tts: TtsApi, client: httpx.AsyncClient) -> None:
        await tts.create_application("app1")
        statuses = []
        for _ in range(6):
            response = await client.get("/applications/app1")
            statuses.append(response.status_code)
            for header in (
                "X-Rate-Limit-Limit",
                "X-Rate-Limit-Available",
                "X-Rate-Limit-Reset",
                "X-Rate-Limit-Retry",
            ):
                assert header in response.headers, (header, dict(response.headers))
            assert "retry-after" not in response.headers
            if response.status_code == 429:
                detail = expect_error(
                    response,
                    code=RESOURCE_EXHAUSTED,
                    namespace="pkg/ratelimit",
                    name="rate_limit_exceeded",
                )
                assert detail["message_format"] == (
                    "rate limit of `{rate}` accesses per minute exceeded for resource `{key}`"
                )
                assert int(response.headers["X-Rate-Limit-Retry"]) >= 1
            else:
                assert response.headers["X-Rate-Limit-Retry"] == "0"
            # FACTS does not pin the X-Rate-Limit-Limit value (GCRA: rate or burst).
            assert int(response.headers["X-Rate-Limit-Limit"]) > 0
        assert statuses[:3] == [200, 200, 200]
        assert 429 in statuses[3:]

    async def test_limits_are_per_token(self, tts: TtsApi, client: httpx.AsyncClient) -> None:
        await tts.create_application("app1")
        other = tts.client_for(
            await tts.create_application_api_key("app1", ["RIGHT_APPLICATION_ALL"])
        )
        for _ in range(5):
            await client.get("/applications/app1")
        expect_ok(await other.get("/applications/app1"))


async def test_x_warning_for_deprecated_link_field(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§f/§a deprecated link fields are dropped with `X-Warning: field X is deprecated`."""
    await tts.create_application("app1")
    response = await client.put(
        "/as/applications/app1/link",
        json={
            "link": {"api_key": "NNSXS.OLD", "skip_payload_crypto": True},
            "field_mask": {"paths": ["api_key", "skip_payload_crypto"]},
        },
    )
    expect_ok(response)
    assert "field api_key is deprecated" in response.headers.get("X-Warning", "")
    ok = await client.put(
        "/as/applications/app1/link",
        json={
            "link": {"skip_payload_crypto": True},
            "field_mask": {"paths": ["skip_payload_crypto"]},
        },
    )
    assert "X-Warning" not in expect_ok_headers(ok)


def expect_ok_headers(response: httpx.Response) -> httpx.Headers:
    expect_ok(response)
    return response.headers
