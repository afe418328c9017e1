"""Identity Server routes of the emulator (FACTS §a): applications, API keys, end devices,
gateways, users/organizations, `/auth_info`; plus the IS pagination rules of §f."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx

from tests.emulator.support import (
    ADMIN_USER,
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    PERMISSION_DENIED,
    UNAUTHENTICATED,
    TtsApi,
    api_key_id,
    expect_error,
    expect_ok,
    is_api_key,
    new_eui,
)

TIMESTAMP_KEYS = {"ids", "created_at", "updated_at"}


# ---------------------------------------------------------------------------------------------
# Applications


async def test_create_application_under_user_and_get(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§a Create (user-owned) `POST /users/{usr}/applications`, then Get with a field mask."""
    created = await tts.create_application("app1", name="App One", description="first")
    assert created["ids"] == {"application_id": "app1"}
    assert created["created_at"] and created["updated_at"]

    got = expect_ok(
        await client.get("/applications/app1", params={"field_mask": "name,description"})
    )
    assert got["name"] == "App One"
    assert got["description"] == "first"
    assert got["ids"] == {"application_id": "app1"}


async def test_create_application_under_organization_and_list_by_owner(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§a Create (org-owned) `POST /organizations/{org}/applications`; list by owner."""
    await tts.create_organization("org1")
    await tts.create_application("org-app", organization="org1")
    await tts.create_application("user-app")

    by_org = expect_ok(await client.get("/organizations/org1/applications"))
    assert [a["ids"]["application_id"] for a in by_org["applications"]] == ["org-app"]
    by_user = expect_ok(await client.get(f"/users/{ADMIN_USER}/applications"))
    assert "user-app" in [a["ids"]["application_id"] for a in by_user["applications"]]
    assert "org-app" not in [a["ids"]["application_id"] for a in by_user["applications"]]


async def test_application_get_without_mask_returns_only_ids_and_timestamps(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§b IS Get with no field mask returns only `ids`, `created_at`, `updated_at`."""
    await tts.create_application("app1", name="named", description="described")
    got = expect_ok(await client.get("/applications/app1"))
    assert set(got) == TIMESTAMP_KEYS


async def test_application_list_pagination_and_total_count(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§f pagination: 1-based `page`, `limit`, `X-Total-Count`, default order by ID ascending,
    `-` for descending (§a list params)."""
    for index in (3, 1, 5, 2, 4):
        await tts.create_application(f"app-{index}")

    first = await client.get(f"/users/{ADMIN_USER}/applications", params={"limit": 2})
    assert expect_ok(first)
    assert first.headers["X-Total-Count"] == "5"
    assert [a["ids"]["application_id"] for a in first.json()["applications"]] == [
        "app-1",
        "app-2",
    ]
    third = await client.get(f"/users/{ADMIN_USER}/applications", params={"limit": 2, "page": 3})
    assert [a["ids"]["application_id"] for a in expect_ok(third)["applications"]] == ["app-5"]
    assert third.headers["X-Total-Count"] == "5"

    page_zero = await client.get(
        f"/users/{ADMIN_USER}/applications", params={"limit": 2, "page": 0}
    )
    assert expect_ok(page_zero) == first.json()

    descending = await client.get(
        f"/users/{ADMIN_USER}/applications", params={"order": "-application_id", "limit": 2}
    )
    assert [a["ids"]["application_id"] for a in expect_ok(descending)["applications"]] == [
        "app-5",
        "app-4",
    ]


async def test_application_list_default_limit_is_100(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§f `limit` defaults to 100; `X-Total-Count` is the total before pagination."""
    for index in range(101):
        await tts.create_application(f"bulk-{index:03d}")
    response = await client.get(f"/users/{ADMIN_USER}/applications")
    assert len(expect_ok(response)["applications"]) == 100
    assert response.headers["X-Total-Count"] == "101"
    second = await client.get(f"/users/{ADMIN_USER}/applications", params={"page": 2})
    assert [a["ids"]["application_id"] for a in expect_ok(second)["applications"]] == ["bulk-100"]


async def test_list_limit_above_1000_is_rejected(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§f the max `limit` is 1000: a higher value fails validation with 400."""
    await tts.create_application("app1")
    response = await client.get("/applications", params={"limit": 1001})
    expect_error(response, code=INVALID_ARGUMENT, namespace="pkg/errors", name="validation")
    assert expect_ok(await client.get("/applications", params={"limit": 1000}))


async def test_update_application(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a Update `PUT /applications/{app}`: only masked fields change."""
    await tts.create_application("app1", name="old", description="keep me")
    updated = await client.put(
        "/applications/app1",
        json={
            "application": {"name": "new", "description": "ignored"},
            "field_mask": {"paths": ["name"]},
        },
    )
    assert expect_ok(updated)["name"] == "new"
    got = expect_ok(
        await client.get("/applications/app1", params={"field_mask": "name,description"})
    )
    assert (got["name"], got["description"]) == ("new", "keep me")


async def test_update_application_ignores_server_managed_paths(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§e ApplicationRegistry/Update: `ids`, `created_at`, `updated_at` are accepted but dropped
    (§h: server-managed)."""
    created = await tts.create_application("app1")
    response = await client.put(
        "/applications/app1",
        json={
            "application": {"created_at": "2001-01-01T00:00:00Z", "name": "n"},
            "field_mask": {"paths": ["created_at", "name"]},
        },
    )
    expect_ok(response)
    got = expect_ok(await client.get("/applications/app1", params={"field_mask": "name"}))
    assert got["created_at"] == created["created_at"]
    assert got["name"] == "n"


async def test_soft_delete_restore_and_id_reservation(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§a/§d soft delete returns `{}`; the ID stays reserved (`id_taken`, 409) until purge;
    restore brings it back; `deleted=true` lists it with `deleted_at` (§b)."""
    await tts.create_application("app1")
    assert expect_ok(await client.delete("/applications/app1")) == {}

    expect_error(
        await client.get("/applications/app1"),
        code=NOT_FOUND,
        namespace="pkg/identityserver/store",
        name="application_not_found",
    )
    deleted = expect_ok(await client.get("/applications", params={"deleted": "true"}))
    [entry] = [a for a in deleted["applications"] if a["ids"]["application_id"] == "app1"]
    assert entry["deleted_at"]

    recreate = await client.post(
        f"/users/{ADMIN_USER}/applications",
        json={"application": {"ids": {"application_id": "app1"}}},
    )
    expect_error(
        recreate,
        code=ALREADY_EXISTS,
        namespace="pkg/util/store",
        name="id_taken",
        message="ID already taken, choose a different one and try again",
    )

    expect_ok(await client.post("/applications/app1/restore"))
    got = expect_ok(await client.get("/applications/app1"))
    assert "deleted_at" not in got


async def test_purge_frees_the_id(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a Purge (hard) by an admin; afterwards the ID can be registered again."""
    await tts.create_application("app1")
    expect_ok(await client.delete("/applications/app1"))
    assert expect_ok(await client.delete("/applications/app1/purge")) == {}
    expect_error(
        await client.get("/applications/app1"), code=NOT_FOUND, name="application_not_found"
    )
    await tts.create_application("app1")


async def test_purge_is_admin_only(tts: TtsApi) -> None:
    """§a Purge is admin only (`admins_purge_applications`, 403), even for the owner."""
    await tts.create_user("alice")
    await tts.create_application("alice-app", user="alice")
    alice = tts.client_for(await tts.create_user_api_key("alice", ["RIGHT_ALL"]))
    expect_ok(await alice.get("/applications/alice-app"))
    expect_error(
        await alice.delete("/applications/alice-app/purge"),
        code=PERMISSION_DENIED,
        name="admins_purge_applications",
    )
    expect_ok(await tts.client.get("/applications/alice-app"))


async def test_delete_application_refused_while_devices_exist(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§a/§d `application_has_devices` (FailedPrecondition → 400) while the IS holds a device;
    purge is refused too."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1")
    expect_error(
        await client.delete("/applications/app1"),
        code=FAILED_PRECONDITION,
        namespace="pkg/identityserver",
        name="application_has_devices",
        message="application still has `1` devices",
    )
    purge = await client.delete("/applications/app1/purge")
    assert purge.status_code == 400, purge.text
    expect_ok(await client.get("/applications/app1"))

    expect_ok(await client.delete("/applications/app1/devices/dev1"))
    assert expect_ok(await client.delete("/applications/app1")) == {}


async def test_application_rights_route(tts: TtsApi) -> None:
    """§a `GET /applications/{app}/rights` returns `{"rights": [...]}` for the caller's token."""
    await tts.create_application("app1")
    key = await tts.create_application_api_key(
        "app1", ["RIGHT_APPLICATION_INFO", "RIGHT_APPLICATION_DEVICES_READ"]
    )
    rights = expect_ok(await tts.client_for(key).get("/applications/app1/rights"))["rights"]
    assert sorted(rights) == ["RIGHT_APPLICATION_DEVICES_READ", "RIGHT_APPLICATION_INFO"]


# ---------------------------------------------------------------------------------------------
# Application API keys


async def test_application_api_key_crud(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a ApplicationAccess: create shows the full token once; list/get never show secrets;
    update rights; delete revokes the token (§f 401)."""
    await tts.create_application("app1")
    created = expect_ok(
        await client.post(
            "/applications/app1/api-keys",
            json={"name": "ci", "rights": ["RIGHT_APPLICATION_INFO"]},
        )
    )
    token = created["key"]
    assert is_api_key(token)
    assert created["id"] == api_key_id(token)
    assert created["rights"] == ["RIGHT_APPLICATION_INFO"]

    listed = await client.get("/applications/app1/api-keys")
    keys = expect_ok(listed)["api_keys"]
    assert [k["id"] for k in keys] == [created["id"]]
    assert "key" not in keys[0]
    assert listed.headers["X-Total-Count"] == "1"

    single = expect_ok(await client.get(f"/applications/app1/api-keys/{created['id']}"))
    assert single["name"] == "ci"
    assert "key" not in single

    holder = tts.client_for(token)
    expect_ok(await holder.get("/applications/app1", params={"field_mask": "name"}))
    expect_error(
        await holder.get("/applications/app1/devices"),
        code=PERMISSION_DENIED,
        namespace="pkg/auth/rights",
        name="insufficient_application_rights",
    )

    updated = expect_ok(
        await client.put(
            f"/applications/app1/api-keys/{created['id']}",
            json={
                "api_key": {
                    "name": "ci-2",
                    "rights": ["RIGHT_APPLICATION_INFO", "RIGHT_APPLICATION_DEVICES_READ"],
                },
                "field_mask": {"paths": ["name", "rights"]},
            },
        )
    )
    assert updated["name"] == "ci-2"
    assert "key" not in updated
    expect_ok(await holder.get("/applications/app1/devices"))

    expect_ok(await client.delete(f"/applications/app1/api-keys/{created['id']}"))
    revoked = await holder.get("/applications/app1")
    assert revoked.status_code == 401, revoked.text
    assert revoked.json()["code"] == UNAUTHENTICATED


async def test_api_key_rights_accept_names_without_prefix(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§b enum input: rights are accepted without the `RIGHT_` prefix; output is canonical."""
    await tts.create_application("app1")
    created = expect_ok(
        await client.post(
            "/applications/app1/api-keys",
            json={"name": "short", "rights": ["APPLICATION_INFO"]},
        )
    )
    assert created["rights"] == ["RIGHT_APPLICATION_INFO"]


async def test_api_key_cannot_grant_rights_the_caller_lacks(tts: TtsApi) -> None:
    """§a the caller needs `RIGHT_APPLICATION_SETTINGS_API_KEYS` plus every right it grants."""
    await tts.create_application("app1")
    limited = tts.client_for(
        await tts.create_application_api_key(
            "app1", ["RIGHT_APPLICATION_SETTINGS_API_KEYS", "RIGHT_APPLICATION_INFO"]
        )
    )
    expect_ok(
        await limited.post(
            "/applications/app1/api-keys",
            json={"name": "ok", "rights": ["RIGHT_APPLICATION_INFO"]},
        )
    )
    escalate = await limited.post(
        "/applications/app1/api-keys",
        json={"name": "too-much", "rights": ["RIGHT_APPLICATION_ALL"]},
    )
    assert escalate.status_code == 403, escalate.text
    assert escalate.json()["code"] == PERMISSION_DENIED
    no_keys_right = tts.client_for(
        await tts.create_application_api_key("app1", ["RIGHT_APPLICATION_INFO"])
    )
    denied = await no_keys_right.post(
        "/applications/app1/api-keys", json={"name": "x", "rights": ["RIGHT_APPLICATION_INFO"]}
    )
    expect_error(
        denied,
        code=PERMISSION_DENIED,
        namespace="pkg/auth/rights",
        name="insufficient_application_rights",
        attributes={"missing": ["RIGHT_APPLICATION_SETTINGS_API_KEYS"]},
    )


# ---------------------------------------------------------------------------------------------
# IS end devices


async def test_create_and_get_end_device(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a IS Create fills `ids.application_ids` from the URL; Get with a mask (§b hex upper)."""
    await tts.create_application("app1")
    dev_eui, join_eui = new_eui(), new_eui()
    created = await tts.create_end_device(
        "app1",
        "dev1",
        dev_eui=dev_eui.lower(),
        join_eui=join_eui,
        name="Device 1",
        attributes={"site": "north"},
    )
    assert created["ids"]["application_ids"] == {"application_id": "app1"}
    assert created["ids"]["dev_eui"] == dev_eui

    got = expect_ok(
        await client.get(
            "/applications/app1/devices/dev1", params={"field_mask": "name,attributes"}
        )
    )
    assert got["ids"] == {
        "device_id": "dev1",
        "application_ids": {"application_id": "app1"},
        "dev_eui": dev_eui,
        "join_eui": join_eui,
    }
    assert got["name"] == "Device 1"
    assert got["attributes"] == {"site": "north"}
    assert got["created_at"] and got["updated_at"]


async def test_get_missing_device_is_404(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§d a missing device in an application you can access returns 404."""
    await tts.create_application("app1")
    expect_error(
        await client.get("/applications/app1/devices/nope"),
        code=NOT_FOUND,
        namespace="pkg/identityserver/store",
        name="end_device_not_found",
    )


async def test_list_end_devices_mask_order_limit_page(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§a IS device list: `field_mask, order, limit, page`; `{"end_devices": [...]}`;
    default order `device_id` ascending; `X-Total-Count` (§f)."""
    await tts.create_application("app1")
    for index, name in [(2, "b"), (1, "c"), (3, "a")]:
        await tts.create_end_device("app1", f"dev{index}", name=name)

    listed = await client.get("/applications/app1/devices")
    devices = expect_ok(listed)["end_devices"]
    assert [d["ids"]["device_id"] for d in devices] == ["dev1", "dev2", "dev3"]
    assert all(set(d) == TIMESTAMP_KEYS for d in devices)
    assert listed.headers["X-Total-Count"] == "3"

    by_name = expect_ok(
        await client.get(
            "/applications/app1/devices", params={"order": "name", "field_mask": "name"}
        )
    )["end_devices"]
    assert [(d["ids"]["device_id"], d["name"]) for d in by_name] == [
        ("dev3", "a"),
        ("dev2", "b"),
        ("dev1", "c"),
    ]

    page = await client.get(
        "/applications/app1/devices", params={"order": "-device_id", "limit": 1, "page": 2}
    )
    assert [d["ids"]["device_id"] for d in expect_ok(page)["end_devices"]] == ["dev2"]
    assert page.headers["X-Total-Count"] == "3"


async def test_list_end_devices_rejects_unknown_order(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§d `order` must be one of the listed values."""
    await tts.create_application("app1")
    response = await client.get("/applications/app1/devices", params={"order": "color"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == INVALID_ARGUMENT


async def test_update_end_device(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a IS Update changes masked fields only."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1", name="old", description="keep")
    updated = await client.put(
        "/applications/app1/devices/dev1",
        json={
            "end_device": {"name": "new", "description": "dropped"},
            "field_mask": {"paths": ["name"]},
        },
    )
    assert expect_ok(updated)["name"] == "new"
    got = expect_ok(
        await client.get(
            "/applications/app1/devices/dev1", params={"field_mask": "name,description"}
        )
    )
    assert (got["name"], got["description"]) == ("new", "keep")


async def test_update_missing_end_device_is_404_not_upsert(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§a IS Update returns 404 if the device is missing (no upsert)."""
    await tts.create_application("app1")
    response = await client.put(
        "/applications/app1/devices/ghost",
        json={"end_device": {"name": "x"}, "field_mask": {"paths": ["name"]}},
    )
    expect_error(response, code=NOT_FOUND, name="end_device_not_found")
    expect_error(
        await client.get("/applications/app1/devices/ghost"),
        code=NOT_FOUND,
        name="end_device_not_found",
    )


async def test_delete_end_device_does_not_cascade(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a IS Delete is a hard delete of the IS entry only; NS/AS/JS keep theirs (§j)."""
    await tts.create_application("app1")
    await tts.register_otaa_device("app1", "dev1")
    assert expect_ok(await client.delete("/applications/app1/devices/dev1")) == {}
    expect_error(
        await client.get("/applications/app1/devices/dev1"),
        code=NOT_FOUND,
        name="end_device_not_found",
    )
    for registry in ("ns", "as", "js"):
        expect_ok(await client.get(f"/{registry}/applications/app1/devices/dev1"))


async def test_batch_get_and_delete_end_devices(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a `GET`/`DELETE /applications/{app}/devices/batch?device_ids=...` (1–20 IDs)."""
    await tts.create_application("app1")
    for index in range(1, 4):
        await tts.create_end_device("app1", f"dev{index}", name=f"n{index}")

    batch = expect_ok(
        await client.get(
            "/applications/app1/devices/batch",
            params=[("device_ids", "dev1"), ("device_ids", "dev3"), ("field_mask", "name")],
        )
    )["end_devices"]
    assert sorted((d["ids"]["device_id"], d["name"]) for d in batch) == [
        ("dev1", "n1"),
        ("dev3", "n3"),
    ]

    expect_ok(
        await client.delete(
            "/applications/app1/devices/batch",
            params=[("device_ids", "dev1"), ("device_ids", "dev2")],
        )
    )
    remaining = expect_ok(await client.get("/applications/app1/devices"))["end_devices"]
    assert [d["ids"]["device_id"] for d in remaining] == ["dev3"]


async def test_batch_requires_between_1_and_20_ids(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a batch routes take 1–20 device IDs; outside that range validation fails (400)."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1")
    too_many = [("device_ids", f"dev{index}") for index in range(1, 22)]
    for params in (too_many, []):
        for method in ("GET", "DELETE"):
            response = await client.request(
                method, "/applications/app1/devices/batch", params=params
            )
            expect_error(response, code=INVALID_ARGUMENT, namespace="pkg/errors", name="validation")
    twenty = [("device_ids", f"dev{index}") for index in range(1, 21)]
    expect_ok(await client.get("/applications/app1/devices/batch", params=twenty))


async def test_is_does_not_store_dev_addr(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§c the IS does not store `dev_addr`."""
    await tts.create_application("app1")
    expect_ok(
        await client.post(
            "/applications/app1/devices",
            json={"end_device": {"ids": {"device_id": "dev1", "dev_addr": "260B0001"}}},
        )
    )
    got = expect_ok(await client.get("/applications/app1/devices/dev1"))
    assert "dev_addr" not in got["ids"]


# ---------------------------------------------------------------------------------------------
# Gateways


async def test_gateway_lifecycle(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a GatewayRegistry: create, get, list, update, soft delete, restore, purge."""
    eui = new_eui()
    created = await tts.create_gateway("gtw1", eui.lower(), name="Roof")
    assert created["ids"] == {"gateway_id": "gtw1", "eui": eui}

    got = expect_ok(
        await client.get("/gateways/gtw1", params={"field_mask": "name,frequency_plan_ids"})
    )
    assert got["name"] == "Roof"
    assert got["frequency_plan_ids"] == ["EU_863_870_TTN"]
    assert got["ids"] == {"gateway_id": "gtw1", "eui": eui}

    listed = await client.get("/gateways")
    assert [g["ids"]["gateway_id"] for g in expect_ok(listed)["gateways"]] == ["gtw1"]
    assert listed.headers["X-Total-Count"] == "1"

    expect_ok(
        await client.put(
            "/gateways/gtw1",
            json={"gateway": {"name": "Tower"}, "field_mask": {"paths": ["name"]}},
        )
    )
    assert (
        expect_ok(await client.get("/gateways/gtw1", params={"field_mask": "name"}))["name"]
        == "Tower"
    )

    assert expect_ok(await client.delete("/gateways/gtw1")) == {}
    expect_error(await client.get("/gateways/gtw1"), code=NOT_FOUND, name="gateway_not_found")
    expect_ok(await client.post("/gateways/gtw1/restore"))
    expect_ok(await client.get("/gateways/gtw1"))

    expect_ok(await client.delete("/gateways/gtw1"))
    assert expect_ok(await client.delete("/gateways/gtw1/purge")) == {}
    await tts.create_gateway("gtw1", eui)


async def test_gateway_under_organization(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a `POST /organizations/{org}/gateways` and `GET /organizations/{org}/gateways`."""
    await tts.create_organization("org1")
    await tts.create_gateway("org-gtw", new_eui(), organization="org1")
    listed = expect_ok(await client.get("/organizations/org1/gateways"))
    assert [g["ids"]["gateway_id"] for g in listed["gateways"]] == ["org-gtw"]


async def test_gateway_eui_reserved_until_purge(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§d/§j a soft-deleted gateway keeps its ID and EUI reserved until an admin purges it."""
    eui = new_eui()
    await tts.create_gateway("gtw1", eui)
    duplicate = await client.post(
        f"/users/{ADMIN_USER}/gateways",
        json={
            "gateway": {
                "ids": {"gateway_id": "gtw2", "eui": eui},
                "frequency_plan_ids": ["EU_863_870_TTN"],
            }
        },
    )
    # §d lists both `pkg/identityserver:gateway_eui_taken` and `pkg/util/store:eui_taken`.
    assert duplicate.status_code == 409, duplicate.text
    assert duplicate.json()["details"][0]["name"] in {"gateway_eui_taken", "eui_taken"}

    expect_ok(await client.delete("/gateways/gtw1"))
    still_reserved = await client.post(
        f"/users/{ADMIN_USER}/gateways",
        json={"gateway": {"ids": {"gateway_id": "gtw2", "eui": eui}}},
    )
    assert still_reserved.status_code == 409, still_reserved.text
    same_id = await client.post(
        f"/users/{ADMIN_USER}/gateways", json={"gateway": {"ids": {"gateway_id": "gtw1"}}}
    )
    expect_error(same_id, code=ALREADY_EXISTS, namespace="pkg/util/store", name="id_taken")

    expect_ok(await client.delete("/gateways/gtw1/purge"))
    await tts.create_gateway("gtw2", eui)


async def test_gateway_frequency_plan_id_is_derived(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a/§h `frequency_plan_id` (deprecated) is derived from `frequency_plan_ids[0]`."""
    await tts.create_gateway("gtw1", new_eui(), frequency_plan_ids=["EU_863_870_TTN"])
    mask = {"field_mask": "frequency_plan_id,frequency_plan_ids"}
    got = expect_ok(await client.get("/gateways/gtw1", params=mask))
    assert got["frequency_plan_id"] == "EU_863_870_TTN"
    expect_ok(
        await client.put(
            "/gateways/gtw1",
            json={
                "gateway": {"frequency_plan_ids": ["US_902_928_FSB_2"]},
                "field_mask": {"paths": ["frequency_plan_ids"]},
            },
        )
    )
    got = expect_ok(await client.get("/gateways/gtw1", params=mask))
    assert got["frequency_plan_ids"] == ["US_902_928_FSB_2"]
    assert got["frequency_plan_id"] == "US_902_928_FSB_2"


# ---------------------------------------------------------------------------------------------
# Users, auth_info


async def test_auth_info_for_admin_and_application_key(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§a `GET /auth_info` tells what the token is; §d it reports `is_admin` for the admin."""
    admin = expect_ok(await client.get("/auth_info"))
    assert admin["is_admin"] is True
    assert admin["api_key"]["entity_ids"] == {"user_ids": {"user_id": ADMIN_USER}}
    assert admin["api_key"]["api_key"]["id"] == api_key_id(tts.admin_key)
    assert "key" not in admin["api_key"]["api_key"]

    await tts.create_application("app1")
    token = await tts.create_application_api_key("app1", ["RIGHT_APPLICATION_INFO"])
    info = expect_ok(await tts.client_for(token).get("/auth_info"))
    assert "is_admin" not in info  # false is a zero value (§b)
    assert info["api_key"]["entity_ids"] == {"application_ids": {"application_id": "app1"}}
    assert info["api_key"]["api_key"]["id"] == api_key_id(token)
    assert info["api_key"]["api_key"]["rights"] == ["RIGHT_APPLICATION_INFO"]


async def test_non_admin_user_key(tts: TtsApi) -> None:
    """The brief's contract: admin creates a user (`POST /users`) and a user API key
    (`POST /users/{usr}/api-keys`); the user can then create and manage its own application."""
    await tts.create_user("bob")
    bob = tts.client_for(await tts.create_user_api_key("bob", ["RIGHT_ALL"]))
    info = expect_ok(await bob.get("/auth_info"))
    assert info["api_key"]["entity_ids"] == {"user_ids": {"user_id": "bob"}}
    assert "is_admin" not in info
    created = await bob.post(
        "/users/bob/applications", json={"application": {"ids": {"application_id": "bob-app"}}}
    )
    expect_ok(created)
    listed = expect_ok(await bob.get("/applications"))
    assert [a["ids"]["application_id"] for a in listed["applications"]] == ["bob-app"]


# ---------------------------------------------------------------------------------------------
# More server-managed behaviour (§e, §h, §d)


async def test_application_contacts_default_to_creator(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§h the IS fills `administrative_contact` and `technical_contact` from the creating
    collaborator when they are left empty."""
    await tts.create_application("app1")
    got = expect_ok(
        await client.get(
            "/applications/app1",
            params={"field_mask": "administrative_contact,technical_contact"},
        )
    )
    assert got["administrative_contact"] == {"user_ids": {"user_id": ADMIN_USER}}
    assert got["technical_contact"] == {"user_ids": {"user_id": ADMIN_USER}}


async def test_application_update_with_empty_mask_touches_only_updated_at(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§e ApplicationRegistry/Update: an empty mask updates only `updated_at`."""
    created = await tts.create_application("app1", name="kept")
    response = await client.put(
        "/applications/app1", json={"application": {"name": "ignored", "description": "ignored"}}
    )
    expect_ok(response)
    got = expect_ok(
        await client.get("/applications/app1", params={"field_mask": "name,description"})
    )
    assert got["name"] == "kept"
    assert "description" not in got
    # Timestamps carry 0, 3, 6 or 9 fraction digits, so compare instants, not strings.
    assert datetime.fromisoformat(got["updated_at"]) >= datetime.fromisoformat(
        created["updated_at"]
    )


async def test_activated_at_cannot_be_unset(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§d IS Update: `activated_at` cannot be unset once set (zero values are dropped from the
    mask)."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1")
    expect_ok(
        await client.put(
            "/applications/app1/devices/dev1",
            json={
                "end_device": {"activated_at": "2024-05-06T07:08:09Z"},
                "field_mask": {"paths": ["activated_at"]},
            },
        )
    )
    expect_ok(
        await client.put(
            "/applications/app1/devices/dev1",
            json={"end_device": {}, "field_mask": {"paths": ["activated_at"]}},
        )
    )
    got = expect_ok(
        await client.get("/applications/app1/devices/dev1", params={"field_mask": "activated_at"})
    )
    assert got["activated_at"] == "2024-05-06T07:08:09Z"


async def test_api_key_expiry_must_be_in_the_future(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """api.json `CreateApplicationAPIKeyRequest.expires_at`: `timestamp.gt_now`."""
    await tts.create_application("app1")
    response = await client.post(
        "/applications/app1/api-keys",
        json={
            "name": "old",
            "rights": ["RIGHT_APPLICATION_INFO"],
            "expires_at": "2001-01-01T00:00:00Z",
        },
    )
    expect_error(response, code=INVALID_ARGUMENT, namespace="pkg/errors", name="validation")
    future = expect_ok(
        await client.post(
            "/applications/app1/api-keys",
            json={
                "name": "new",
                "rights": ["RIGHT_APPLICATION_INFO"],
                "expires_at": "2999-01-01T00:00:00Z",
            },
        )
    )
    assert future["expires_at"] == "2999-01-01T00:00:00Z"


async def test_application_list_rejects_unknown_order(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§d `order` must be one of the listed values."""
    await tts.create_application("app1")
    response = await client.get("/applications", params={"order": "colour"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == INVALID_ARGUMENT


async def test_empty_eui_means_unset(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§b/§d an empty EUI string means unset."""
    await tts.create_application("app1")
    created = expect_ok(
        await client.post(
            "/applications/app1/devices",
            json={"end_device": {"ids": {"device_id": "dev1", "dev_eui": "", "join_eui": ""}}},
        )
    )
    assert "dev_eui" not in created["ids"]
    assert "join_eui" not in created["ids"]


# ---------------------------------------------------------------------------------------------
# Collaborators (§a)


async def test_application_collaborators(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a `PUT /applications/{app}/collaborators` upserts; list; singular
    `/collaborator/user/{usr}` for get and delete."""
    await tts.create_application("app1")
    await tts.create_user("dave")
    expect_ok(
        await client.put(
            "/applications/app1/collaborators",
            json={
                "collaborator": {
                    "ids": {"user_ids": {"user_id": "dave"}},
                    "rights": ["RIGHT_APPLICATION_INFO"],
                }
            },
        )
    )
    single = expect_ok(await client.get("/applications/app1/collaborator/user/dave"))
    assert single["rights"] == ["RIGHT_APPLICATION_INFO"]
    listed = expect_ok(await client.get("/applications/app1/collaborators"))["collaborators"]
    assert {"user_ids": {"user_id": "dave"}} in [c["ids"] for c in listed]

    dave = tts.client_for(await tts.create_user_api_key("dave", ["RIGHT_ALL"]))
    expect_ok(await dave.get("/applications/app1", params={"field_mask": "name"}))
    expect_error(
        await dave.get("/applications/app1/devices"),
        code=PERMISSION_DENIED,
        namespace="pkg/auth/rights",
        name="insufficient_application_rights",
    )

    expect_ok(await client.delete("/applications/app1/collaborator/user/dave"))
    expect_error(
        await dave.get("/applications/app1/devices"),
        code=PERMISSION_DENIED,
        namespace="pkg/auth/rights",
        name="no_application_rights",
    )


async def test_gateway_collaborator_delete_uses_plural(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§a quirk: gateway collaborator GET is singular, DELETE is plural
    (`DELETE /gateways/{gtw}/collaborators/user/{usr}`)."""
    await tts.create_gateway("gtw1", new_eui())
    await tts.create_user("erin")
    expect_ok(
        await client.put(
            "/gateways/gtw1/collaborators",
            json={
                "collaborator": {
                    "ids": {"user_ids": {"user_id": "erin"}},
                    "rights": ["RIGHT_GATEWAY_INFO"],
                }
            },
        )
    )
    expect_ok(await client.get("/gateways/gtw1/collaborator/user/erin"))
    expect_ok(await client.delete("/gateways/gtw1/collaborators/user/erin"))
    response = await client.get("/gateways/gtw1/collaborator/user/erin")
    assert response.status_code == 404, response.text


async def test_update_path_ids_win_over_body(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a a path value overrides the same field in the body."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1")
    await tts.create_end_device("app1", "dev2", name="untouched")
    response = await client.put(
        "/applications/app1/devices/dev1",
        json={
            "end_device": {"ids": {"device_id": "dev2"}, "name": "renamed"},
            "field_mask": {"paths": ["name"]},
        },
    )
    assert expect_ok(response)["ids"]["device_id"] == "dev1"
    dev2 = expect_ok(
        await client.get("/applications/app1/devices/dev2", params={"field_mask": "name"})
    )
    assert dev2["name"] == "untouched"
    dev1 = expect_ok(
        await client.get("/applications/app1/devices/dev1", params={"field_mask": "name"})
    )
    assert dev1["name"] == "renamed"


async def test_list_returns_all_identifier_fields(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§b `ids` with all identifier sub-fields come back even with no mask (list too)."""
    await tts.create_application("app1")
    dev_eui, join_eui = new_eui(), new_eui()
    await tts.create_end_device("app1", "dev1", dev_eui=dev_eui, join_eui=join_eui)
    [device] = expect_ok(await client.get("/applications/app1/devices"))["end_devices"]
    assert device["ids"] == {
        "device_id": "dev1",
        "application_ids": {"application_id": "app1"},
        "dev_eui": dev_eui,
        "join_eui": join_eui,
    }


async def test_device_list_filter_updated_since(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a `POST /applications/{app}/devices/filter` with `filters: [{"updated_since": ts}]`."""
    await tts.create_application("app1")
    earlier = await tts.create_end_device("app1", "dev1")
    await asyncio.sleep(0.01)
    await tts.create_end_device("app1", "dev2")
    # Strictly between the two updates, so inclusive and exclusive "since" agree.
    since = datetime.fromisoformat(earlier["updated_at"]) + timedelta(microseconds=1)
    response = await client.post(
        "/applications/app1/devices/filter",
        json={"filters": [{"updated_since": since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}]},
    )
    devices = expect_ok(response)["end_devices"]
    assert [d["ids"]["device_id"] for d in devices] == ["dev2"]


async def test_api_key_list_order(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a API key list `order` ∈ `api_key_id, name, created_at, expires_at` (optionally `-`)."""
    await tts.create_application("app1")
    for name in ("bravo", "alpha", "charlie"):
        await tts.create_application_api_key("app1", ["RIGHT_APPLICATION_INFO"], name=name)
    keys = expect_ok(await client.get("/applications/app1/api-keys", params={"order": "-name"}))[
        "api_keys"
    ]
    assert [k["name"] for k in keys] == ["charlie", "bravo", "alpha"]
    page = await client.get(
        "/applications/app1/api-keys", params={"order": "name", "limit": 1, "page": 2}
    )
    assert [k["name"] for k in expect_ok(page)["api_keys"]] == ["bravo"]
    assert page.headers["X-Total-Count"] == "3"
