"""The NS, AS and JS end-device registries (FACTS §a), keys (§g) and server-managed fields (§h)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.emulator.support import (
    FREQUENCY_PLAN,
    INVALID_ARGUMENT,
    NOT_FOUND,
    TtsApi,
    expect_error,
    expect_ok,
    new_dev_addr,
    new_eui,
    new_key,
)

REGISTRIES = ["ns", "as", "js"]
# §d "Common namespace:name pairs": NS/AS deletes of missing devices, JS device_not_found.
DELETE_MISSING = {
    "ns": ("pkg/networkserver", "device_not_found"),
    "as": ("pkg/applicationserver", "device_not_found"),
    "js": ("pkg/joinserver", "device_not_found"),
}


def otaa_body(registry: str, ids: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """A minimal valid Set body and mask for one registry (§c: each registry only its fields)."""
    if registry == "ns":
        return (
            {
                "ids": ids,
                "supports_join": True,
                "lorawan_version": "1.0.2",
                "lorawan_phy_version": "1.0.2-b",
                "frequency_plan_id": FREQUENCY_PLAN,
            },
            ["supports_join", "lorawan_version", "lorawan_phy_version", "frequency_plan_id"],
        )
    if registry == "as":
        return (
            {"ids": ids, "formatters": {"up_formatter": "FORMATTER_CAYENNELPP"}},
            ["formatters.up_formatter"],
        )
    return ({"ids": ids, "root_keys": {"app_key": {"key": new_key()}}}, ["root_keys.app_key.key"])


def new_ids(device_id: str) -> dict[str, str]:
    return {"device_id": device_id, "dev_eui": new_eui(), "join_eui": new_eui()}


@pytest.fixture
async def app1(tts: TtsApi) -> None:
    await tts.create_application("app1")


@pytest.mark.parametrize("registry", REGISTRIES)
async def test_set_put_upserts_get_delete(
    client: httpx.AsyncClient, app1: None, registry: str
) -> None:
    """§a Set (PUT) creates and updates (upsert); Get returns it; Delete removes it (404 after)."""
    ids = new_ids("dev1")
    body, paths = otaa_body(registry, ids)
    url = f"/{registry}/applications/app1/devices/dev1"
    created = expect_ok(
        await client.put(url, json={"end_device": body, "field_mask": {"paths": paths}})
    )
    assert created["ids"]["device_id"] == "dev1"
    assert created["ids"]["application_ids"] == {"application_id": "app1"}
    assert created["ids"]["dev_eui"] == ids["dev_eui"]
    expect_ok(await client.get(url))

    assert expect_ok(await client.delete(url)) == {}
    response = await client.get(url)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == NOT_FOUND
    namespace, name = DELETE_MISSING[registry]
    expect_error(await client.delete(url), code=NOT_FOUND, namespace=namespace, name=name)


@pytest.mark.parametrize("registry", REGISTRIES)
async def test_set_post_binding_upserts(
    client: httpx.AsyncClient, app1: None, registry: str
) -> None:
    """§a `POST /{ns,as,js}/applications/{app}/devices` is the second Set binding; the device ID
    comes from the body."""
    ids = new_ids("dev2")
    body, paths = otaa_body(registry, ids)
    response = await client.post(
        f"/{registry}/applications/app1/devices",
        json={"end_device": body, "field_mask": {"paths": paths}},
    )
    assert expect_ok(response)["ids"]["device_id"] == "dev2"
    expect_ok(await client.get(f"/{registry}/applications/app1/devices/dev2"))


async def test_ns_update_keeps_unmasked_fields(client: httpx.AsyncClient, app1: None) -> None:
    """§a Set is an upsert with a mask: a second Set changes only its paths."""
    ids = new_ids("dev1")
    body, paths = otaa_body("ns", ids)
    url = "/ns/applications/app1/devices/dev1"
    expect_ok(await client.put(url, json={"end_device": body, "field_mask": {"paths": paths}}))
    update = {"ids": ids, "supports_class_c": True, "frequency_plan_id": "US_902_928_FSB_2"}
    updated = expect_ok(
        await client.put(
            url, json={"end_device": update, "field_mask": {"paths": ["supports_class_c"]}}
        )
    )
    assert updated["supports_class_c"] is True
    got = expect_ok(
        await client.get(
            url,
            params={
                "field_mask": "supports_class_c,frequency_plan_id,lorawan_version,supports_join"
            },
        )
    )
    assert got["supports_class_c"] is True
    assert got["frequency_plan_id"] == FREQUENCY_PLAN
    assert got["lorawan_version"] == "MAC_V1_0_2"
    assert got["supports_join"] is True


async def test_path_ids_override_body(client: httpx.AsyncClient, app1: None) -> None:
    """§a a path value overrides the same field in the body."""
    ids = new_ids("from-body")
    body, paths = otaa_body("as", ids)
    response = await client.put(
        "/as/applications/app1/devices/from-path",
        json={"end_device": body, "field_mask": {"paths": paths}},
    )
    assert expect_ok(response)["ids"]["device_id"] == "from-path"
    expect_ok(await client.get("/as/applications/app1/devices/from-path"))


@pytest.mark.parametrize("registry", REGISTRIES)
async def test_batch_delete(client: httpx.AsyncClient, app1: None, registry: str) -> None:
    """§a `DELETE /{ns,as,js}/applications/{app}/devices/batch?device_ids=...`."""
    for device_id in ("dev1", "dev2", "dev3"):
        body, paths = otaa_body(registry, new_ids(device_id))
        expect_ok(
            await client.put(
                f"/{registry}/applications/app1/devices/{device_id}",
                json={"end_device": body, "field_mask": {"paths": paths}},
            )
        )
    expect_ok(
        await client.delete(
            f"/{registry}/applications/app1/devices/batch",
            params=[("device_ids", "dev1"), ("device_ids", "dev3")],
        )
    )
    assert (await client.get(f"/{registry}/applications/app1/devices/dev1")).status_code == 404
    assert (await client.get(f"/{registry}/applications/app1/devices/dev3")).status_code == 404
    expect_ok(await client.get(f"/{registry}/applications/app1/devices/dev2"))


async def test_registries_do_not_require_the_is_device(
    client: httpx.AsyncClient, app1: None
) -> None:
    """§d NS/AS/JS do not check that the IS device exists: orphans are possible."""
    body, paths = otaa_body("ns", new_ids("orphan"))
    expect_ok(
        await client.put(
            "/ns/applications/app1/devices/orphan",
            json={"end_device": body, "field_mask": {"paths": paths}},
        )
    )
    assert (await client.get("/applications/app1/devices/orphan")).status_code == 404


# ---------------------------------------------------------------------------------------------
# Keys (§g)


async def test_js_set_echoes_plaintext_and_get_returns_plaintext(
    client: httpx.AsyncClient, app1: None
) -> None:
    """§g the JS Set response echoes the plaintext envelope; Get with READ_KEYS returns plaintext
    only: never `encrypted_key`/`kek_label`."""
    ids = new_ids("dev1")
    app_key, nwk_key = new_key(), new_key()
    response = await client.put(
        "/js/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": ids,
                "root_keys": {
                    "root_key_id": "rk-1",
                    "app_key": {"key": app_key.lower()},
                    "nwk_key": {"key": nwk_key},
                },
            },
            "field_mask": {
                "paths": ["root_keys.root_key_id", "root_keys.app_key.key", "root_keys.nwk_key.key"]
            },
        },
    )
    echoed = expect_ok(response)["root_keys"]
    assert echoed["app_key"] == {"key": app_key}
    assert echoed["nwk_key"] == {"key": nwk_key}
    assert echoed["root_key_id"] == "rk-1"

    for mask in ("root_keys", "root_keys.app_key,root_keys.nwk_key,root_keys.root_key_id"):
        got = expect_ok(
            await client.get("/js/applications/app1/devices/dev1", params={"field_mask": mask})
        )
        assert got["root_keys"] == {
            "root_key_id": "rk-1",
            "app_key": {"key": app_key},
            "nwk_key": {"key": nwk_key},
        }
    leaf = expect_ok(
        await client.get(
            "/js/applications/app1/devices/dev1", params={"field_mask": "root_keys.app_key.key"}
        )
    )
    assert leaf["root_keys"] == {"app_key": {"key": app_key}}


async def test_js_without_app_key_omits_it(client: httpx.AsyncClient, app1: None) -> None:
    """§g if nothing is stored, `app_key` is simply absent."""
    ids = new_ids("dev1")
    expect_ok(
        await client.put(
            "/js/applications/app1/devices/dev1",
            json={
                "end_device": {"ids": ids, "net_id": "000013"},
                "field_mask": {"paths": ["net_id"]},
            },
        )
    )
    got = expect_ok(
        await client.get(
            "/js/applications/app1/devices/dev1", params={"field_mask": "root_keys,net_id"}
        )
    )
    assert "root_keys" not in got
    assert got["net_id"] == "000013"


async def test_ns_and_as_session_keys_plaintext(
    tts: TtsApi, client: httpx.AsyncClient, app1: None
) -> None:
    """§g NS Get unwraps the session keys, AS Get `app_s_key`; for LoRaWAN 1.0.x the NS copies
    FNwkSIntKey into SNwkSIntKey and NwkSEncKey."""
    abp = await tts.register_abp_device("app1", "abp1")
    ns = expect_ok(
        await client.get("/ns/applications/app1/devices/abp1", params={"field_mask": "session"})
    )
    keys = ns["session"]["keys"]
    assert keys["f_nwk_s_int_key"] == {"key": abp["f_nwk_s_int_key"]}
    assert keys["s_nwk_s_int_key"] == {"key": abp["f_nwk_s_int_key"]}
    assert keys["nwk_s_enc_key"] == {"key": abp["f_nwk_s_int_key"]}
    assert ns["session"]["dev_addr"] == abp["dev_addr"]
    assert "encrypted_key" not in str(ns) and "kek_label" not in str(ns)

    as_dev = expect_ok(
        await client.get(
            "/as/applications/app1/devices/abp1",
            params={"field_mask": "session.keys.app_s_key.key"},
        )
    )
    assert as_dev["session"]["keys"]["app_s_key"] == {"key": abp["app_s_key"]}


async def test_ns_dev_addr_appears_in_ids(
    tts: TtsApi, client: httpx.AsyncClient, app1: None
) -> None:
    """§c `ids.dev_addr` is served by AS/NS (derived from `session.dev_addr`)."""
    abp = await tts.register_abp_device("app1", "abp1")
    got = expect_ok(
        await client.get(
            "/ns/applications/app1/devices/abp1", params={"field_mask": "ids.dev_addr"}
        )
    )
    assert got["ids"]["dev_addr"] == abp["dev_addr"]


# ---------------------------------------------------------------------------------------------
# Server-managed fields (§h)


async def test_is_update_forbids_created_at(
    tts: TtsApi, client: httpx.AsyncClient, app1: None
) -> None:
    """§h/§e IS device Update has no `created_at` (nor `ids`) in its allow-list."""
    await tts.create_end_device("app1", "dev1")
    response = await client.put(
        "/applications/app1/devices/dev1",
        json={
            "end_device": {"created_at": "2001-01-01T00:00:00Z"},
            "field_mask": {"paths": ["created_at"]},
        },
    )
    expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace="pkg/rpcmiddleware/validator",
        name="field_mask_paths",
        attributes={"forbidden_paths": ["created_at"]},
    )


async def test_create_ignores_client_timestamps(
    tts: TtsApi, client: httpx.AsyncClient, app1: None
) -> None:
    """§h `created_at`/`updated_at` are server-managed: a client value on Create is not kept."""
    created = expect_ok(
        await client.post(
            "/applications/app1/devices",
            json={
                "end_device": {
                    "ids": {"device_id": "dev1"},
                    "created_at": "2001-01-01T00:00:00Z",
                    "updated_at": "2001-01-01T00:00:00Z",
                }
            },
        )
    )
    assert not created["created_at"].startswith("2001")
    got = expect_ok(await client.get("/applications/app1/devices/dev1"))
    assert not got["created_at"].startswith("2001")
    assert not got["updated_at"].startswith("2001")


async def test_updated_at_moves_on_update(
    tts: TtsApi, client: httpx.AsyncClient, app1: None
) -> None:
    """§b/§h `updated_at` is server-managed and changes on update; `created_at` does not."""
    created = await tts.create_end_device("app1", "dev1")
    expect_ok(
        await client.put(
            "/applications/app1/devices/dev1",
            json={"end_device": {"name": "x"}, "field_mask": {"paths": ["name"]}},
        )
    )
    got = expect_ok(await client.get("/applications/app1/devices/dev1"))
    assert got["created_at"] == created["created_at"]
    # Timestamps carry 0, 3, 6 or 9 fraction digits, so compare instants, not strings.
    assert datetime.fromisoformat(got["updated_at"]) >= datetime.fromisoformat(
        created["updated_at"]
    )


@pytest.mark.parametrize("path", ["power_state", "ids.dev_addr", "created_at"])
async def test_ns_read_only_paths_not_settable(
    client: httpx.AsyncClient, app1: None, path: str
) -> None:
    """§c/§h NS read-only paths (`power_state`, `ids.dev_addr`, timestamps) are not in NS Set."""
    body, paths = otaa_body("ns", new_ids("dev1"))
    response = await client.put(
        "/ns/applications/app1/devices/dev1",
        json={"end_device": body, "field_mask": {"paths": [*paths, path]}},
    )
    expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace="pkg/rpcmiddleware/validator",
        name="field_mask_paths",
        attributes={"forbidden_paths": [path]},
    )


async def test_abp_device_full_registration(
    tts: TtsApi, client: httpx.AsyncClient, app1: None
) -> None:
    """§d ABP session rules end to end, §b uint64 strings in the stored MAC settings."""
    dev_eui, dev_addr = new_eui(), new_dev_addr()
    await tts.create_end_device("app1", "abp2", dev_eui=dev_eui)
    ids = {"device_id": "abp2", "dev_eui": dev_eui}
    expect_ok(
        await client.put(
            "/ns/applications/app1/devices/abp2",
            json={
                "end_device": {
                    "ids": ids,
                    "supports_join": False,
                    "lorawan_version": "1.0.2",
                    "lorawan_phy_version": "1.0.2-b",
                    "frequency_plan_id": FREQUENCY_PLAN,
                    "session": {
                        "dev_addr": dev_addr,
                        "keys": {"f_nwk_s_int_key": {"key": new_key()}},
                    },
                    "mac_settings": {
                        "resets_f_cnt": True,
                        "factory_preset_frequencies": [868100000],
                    },
                },
                "field_mask": {
                    "paths": [
                        "supports_join",
                        "lorawan_version",
                        "lorawan_phy_version",
                        "frequency_plan_id",
                        "session.dev_addr",
                        "session.keys.f_nwk_s_int_key.key",
                        "session.keys.session_key_id",
                        "mac_settings.resets_f_cnt",
                        "mac_settings.factory_preset_frequencies",
                    ]
                },
            },
        )
    )
    got = expect_ok(
        await client.get(
            "/ns/applications/app1/devices/abp2",
            params={"field_mask": "supports_join,session.dev_addr,mac_settings"},
        )
    )
    assert "supports_join" not in got  # false is omitted (§b)
    assert got["session"]["dev_addr"] == dev_addr
    assert got["mac_settings"]["resets_f_cnt"] is True
    assert got["mac_settings"]["factory_preset_frequencies"] == ["868100000"]


@pytest.mark.parametrize("registry", ["ns", "as"])
async def test_ns_as_get_missing_device_is_redis_not_found(
    client: httpx.AsyncClient, app1: None, registry: str
) -> None:
    """§d `pkg/redis:not_found` ("entity not found"): NS/AS device missing."""
    expect_error(
        await client.get(f"/{registry}/applications/app1/devices/ghost"),
        code=NOT_FOUND,
        namespace="pkg/redis",
        name="not_found",
        message="entity not found",
    )


async def test_js_create_with_dev_addr_is_refused(client: httpx.AsyncClient, app1: None) -> None:
    """§d JS Set: on create, `ids.dev_addr` must be empty."""
    ids = {**new_ids("dev1"), "dev_addr": "260B0001"}
    response = await client.put(
        "/js/applications/app1/devices/dev1",
        json={
            "end_device": {"ids": ids, "root_keys": {"app_key": {"key": new_key()}}},
            "field_mask": {"paths": ["root_keys.app_key.key"]},
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == INVALID_ARGUMENT


async def test_js_claim_authentication_code_warns(client: httpx.AsyncClient, app1: None) -> None:
    """§c/§f the JS still accepts `claim_authentication_code` with an `X-Warning` ("Storage of
    claim authentication code in the Join Server registry is deprecated…")."""
    ids = new_ids("dev1")
    response = await client.put(
        "/js/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": ids,
                "root_keys": {"app_key": {"key": new_key()}},
                "claim_authentication_code": {"value": "ABCD1234"},
            },
            "field_mask": {"paths": ["root_keys.app_key.key", "claim_authentication_code.value"]},
        },
    )
    expect_ok(response)
    assert response.headers.get("X-Warning", "").startswith(
        "Storage of claim authentication code in the Join Server registry is deprecated"
    ), response.headers


async def test_ns_reset_factory_defaults_wipes_otaa_session(
    client: httpx.AsyncClient, app1: None
) -> None:
    """§a `PATCH /ns/applications/{app}/devices/{dev}` wipes the MAC state and session."""
    ids = new_ids("dev1")
    body, paths = otaa_body("ns", ids)
    body["session"] = {
        "dev_addr": new_dev_addr(),
        "keys": {"session_key_id": "AQIDBA==", "f_nwk_s_int_key": {"key": new_key()}},
    }
    paths = [
        *paths,
        "session.dev_addr",
        "session.keys.session_key_id",
        "session.keys.f_nwk_s_int_key.key",
    ]
    url = "/ns/applications/app1/devices/dev1"
    expect_ok(await client.put(url, json={"end_device": body, "field_mask": {"paths": paths}}))
    assert "session" in expect_ok(await client.get(url, params={"field_mask": "session.dev_addr"}))

    expect_ok(await client.patch(url, json={"field_mask": {"paths": ["supports_join"]}}))
    got = expect_ok(
        await client.get(url, params={"field_mask": "session,mac_state,frequency_plan_id"})
    )
    assert "session" not in got
    assert "mac_state" not in got
    assert got["frequency_plan_id"] == FREQUENCY_PLAN


async def test_js_zero_nwk_key_clears_it(client: httpx.AsyncClient, app1: None) -> None:
    """§d JS Set: an all-zero `nwk_key.key` clears the NwkKey."""
    ids = new_ids("dev1")
    url = "/js/applications/app1/devices/dev1"
    app_key = new_key()
    expect_ok(
        await client.put(
            url,
            json={
                "end_device": {
                    "ids": ids,
                    "root_keys": {"app_key": {"key": app_key}, "nwk_key": {"key": new_key()}},
                },
                "field_mask": {"paths": ["root_keys.app_key.key", "root_keys.nwk_key.key"]},
            },
        )
    )
    expect_ok(
        await client.put(
            url,
            json={
                "end_device": {"ids": ids, "root_keys": {"nwk_key": {"key": "0" * 32}}},
                "field_mask": {"paths": ["root_keys.nwk_key.key"]},
            },
        )
    )
    got = expect_ok(await client.get(url, params={"field_mask": "root_keys"}))
    assert got["root_keys"] == {"app_key": {"key": app_key}}


async def test_js_update_with_dev_addr_is_field_mask_error(
    client: httpx.AsyncClient, app1: None
) -> None:
    """§d JS Set: on update, `ids.dev_addr` is prohibited (`pkg/joinserver:field_mask`)."""
    ids = new_ids("dev1")
    body, paths = otaa_body("js", ids)
    url = "/js/applications/app1/devices/dev1"
    expect_ok(await client.put(url, json={"end_device": body, "field_mask": {"paths": paths}}))
    body["ids"] = {**ids, "dev_addr": "260B0001"}
    expect_error(
        await client.put(url, json={"end_device": body, "field_mask": {"paths": paths}}),
        code=INVALID_ARGUMENT,
        namespace="pkg/joinserver",
        name="field_mask",
    )


@pytest.mark.parametrize("registry", ["ns", "as"])
async def test_session_key_id_is_base64(
    client: httpx.AsyncClient, app1: None, registry: str
) -> None:
    """§b other bytes (e.g. `session.keys.session_key_id`) use standard base64."""
    ids = new_ids("dev1")
    dev_addr = new_dev_addr()
    if registry == "ns":
        body, paths = otaa_body("ns", ids)
        body["session"] = {
            "dev_addr": dev_addr,
            "keys": {"session_key_id": "AQID+/8=", "f_nwk_s_int_key": {"key": new_key()}},
        }
        paths = [*paths, "session.dev_addr", "session.keys.session_key_id"]
        paths.append("session.keys.f_nwk_s_int_key.key")
    else:
        body = {
            "ids": ids,
            "session": {
                "dev_addr": dev_addr,
                "keys": {"session_key_id": "AQID+/8=", "app_s_key": {"key": new_key()}},
            },
        }
        paths = ["session.dev_addr", "session.keys.session_key_id", "session.keys.app_s_key.key"]
    url = f"/{registry}/applications/app1/devices/dev1"
    expect_ok(await client.put(url, json={"end_device": body, "field_mask": {"paths": paths}}))
    got = expect_ok(await client.get(url, params={"field_mask": "session.keys.session_key_id"}))
    assert got["session"]["keys"]["session_key_id"] == "AQID+/8="
