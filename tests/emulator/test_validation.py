"""Validation rules and errors (FACTS §d): identifiers, lengths, the error body, uniqueness,
registry-specific semantic rules."""

from __future__ import annotations

import random
import re
from typing import Any

import httpx
import pytest

from tests.emulator.support import (
    ADMIN_USER,
    ALREADY_EXISTS,
    FREQUENCY_PLAN,
    INVALID_ARGUMENT,
    NOT_FOUND,
    TtsApi,
    expect_error,
    expect_ok,
    iter_causes,
    new_dev_addr,
    new_eui,
    new_key,
)
from tests.shared_data import TTS_REFERENCE_DIR, shared_path

VALID_IDS = ["abc", "a-b-c", "0a1", "x" * 36, "dev-01-north"]
INVALID_IDS = ["ab", "-abc", "abc-", "a--b", "Abc", "abc_def", "abc.def", "x" * 37, "ab c"]


NAMED_BLOCKLISTED = [
    "test",
    "demo",
    "dev",
    "device",
    "gateway",
    "admin",
    "api",
    "app",
    "root",
    "null",
]
BLOCKLIST_SAMPLE = 10


def blocklist_word(index: int) -> str:
    """The index-th of a fixed random sample of the real blocklist (read when the test runs)."""
    words = (shared_path(TTS_REFERENCE_DIR) / "id-blocklist.txt").read_text("utf-8").split()
    return random.Random(7).sample(words, BLOCKLIST_SAMPLE)[index]


def expect_validation_error(
    response: httpx.Response, leaf_field: str | None = None
) -> dict[str, Any]:
    """§d body validation: `pkg/errors:validation`, message `invalid `{field}`: {reason}`; the
    leaf sits in the `cause` chain."""
    detail = expect_error(
        response, code=INVALID_ARGUMENT, namespace="pkg/errors", name="validation"
    )
    assert re.fullmatch(
        r"error:pkg/errors:validation \(invalid `[^`]+`: .+\)", response.json()["message"]
    )
    if leaf_field is not None:
        fields = [cause.get("attributes", {}).get("field") for cause in iter_causes(detail)]
        assert leaf_field in fields, fields
    return detail


# ---------------------------------------------------------------------------------------------
# Identifiers


@pytest.mark.parametrize("app_id", VALID_IDS)
async def test_valid_ids_are_accepted(tts: TtsApi, app_id: str) -> None:
    """§d ID regex `^[a-z0-9](?:[-]?[a-z0-9]){2,}$`, max 36."""
    created = await tts.create_application(app_id)
    assert created["ids"]["application_id"] == app_id


@pytest.mark.parametrize("app_id", INVALID_IDS)
async def test_invalid_application_ids(client: httpx.AsyncClient, app_id: str) -> None:
    """§d an application ID outside the regex/length is `pkg/errors:validation` (400)."""
    response = await client.post(
        f"/users/{ADMIN_USER}/applications",
        json={"application": {"ids": {"application_id": app_id}}},
    )
    expect_validation_error(response, "application_id")


@pytest.mark.parametrize("device_id", INVALID_IDS)
async def test_invalid_device_ids_name_the_wrapper_and_leaf(
    tts: TtsApi, client: httpx.AsyncClient, device_id: str
) -> None:
    """§d the outer field names the request wrapper (`end_device`, "embedded message failed
    validation"); the real leaf (`device_id`) sits in the nested `cause` chain."""
    await tts.create_application("app1")
    response = await client.post(
        "/applications/app1/devices", json={"end_device": {"ids": {"device_id": device_id}}}
    )
    detail = expect_validation_error(response, "device_id")
    assert response.json()["message"] == (
        "error:pkg/errors:validation (invalid `end_device`: embedded message failed validation)"
    )
    assert detail["attributes"]["field"] == "end_device"
    assert detail["attributes"]["name"]  # the validator type


@pytest.mark.parametrize(("user_id", "ok"), [("ab", True), ("a", False), ("a-", False)])
async def test_user_id_minimum_two_chars(client: httpx.AsyncClient, user_id: str, ok: bool) -> None:
    """§d `user_id`: `^[a-z0-9](?:[-]?[a-z0-9]){1,}$` (min 2)."""
    response = await client.post(
        "/users",
        json={
            "user": {
                "ids": {"user_id": user_id},
                "primary_email_address": "u@example.com",
                "password": "correct-horse-battery-staple-1",
            }
        },
    )
    if ok:
        expect_ok(response)
    else:
        expect_validation_error(response, "user_id")


@pytest.fixture(params=[*NAMED_BLOCKLISTED, *(f"sample-{i}" for i in range(BLOCKLIST_SAMPLE))])
def blocklisted_word(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    if param.startswith("sample-"):
        return blocklist_word(int(param.removeprefix("sample-")))
    return param


async def test_blocklisted_ids_are_refused_on_create(
    tts: TtsApi, client: httpx.AsyncClient, blocklisted_word: str
) -> None:
    """§d IS ID blocklist: `pkg/identityserver/blocklist:forbidden_id`, 400,
    "the ID `{id}` can not be registered" (applications, devices, gateways)."""
    word = blocklisted_word
    if len(word) < 3 or len(word) > 36:
        pytest.skip("not a valid entity ID anyway")
    await tts.create_application("app1")
    creates = [
        (f"/users/{ADMIN_USER}/applications", {"application": {"ids": {"application_id": word}}}),
        ("/applications/app1/devices", {"end_device": {"ids": {"device_id": word}}}),
        (f"/users/{ADMIN_USER}/gateways", {"gateway": {"ids": {"gateway_id": word}}}),
    ]
    for url, body in creates:
        expect_error(
            await client.post(url, json=body),
            code=INVALID_ARGUMENT,
            namespace="pkg/identityserver/blocklist",
            name="forbidden_id",
            message=f"the ID `{word}` can not be registered",
        )


async def test_blocklist_applies_to_organizations_and_users(client: httpx.AsyncClient) -> None:
    """§d the blocklist covers organizations and users too."""
    org = await client.post(
        f"/users/{ADMIN_USER}/organizations",
        json={"organization": {"ids": {"organization_id": "lorawan"}}},
    )
    expect_error(
        org, code=INVALID_ARGUMENT, namespace="pkg/identityserver/blocklist", name="forbidden_id"
    )
    user = await client.post(
        "/users",
        json={
            "user": {
                "ids": {"user_id": "admin"},
                "primary_email_address": "a@example.com",
                "password": "correct-horse-battery-staple-1",
            }
        },
    )
    expect_error(
        user, code=INVALID_ARGUMENT, namespace="pkg/identityserver/blocklist", name="forbidden_id"
    )


# ---------------------------------------------------------------------------------------------
# Field limits


@pytest.mark.parametrize(
    ("fields", "leaf"),
    [
        ({"name": "n" * 51}, "name"),
        ({"description": "d" * 2001}, "description"),
        ({"attributes": {f"key-{i}": "v" for i in range(11)}}, "attributes"),
        ({"attributes": {"Bad_Key": "v"}}, "attributes"),
        ({"attributes": {"key": "v" * 201}}, "attributes"),
        ({"version_ids": {"brand_id": "Bad Brand"}}, "brand_id"),
        ({"version_ids": {"hardware_version": "h" * 33}}, "hardware_version"),
        ({"network_server_address": "not a host!"}, "network_server_address"),
    ],
)
async def test_field_limits_on_create(
    tts: TtsApi, client: httpx.AsyncClient, fields: dict[str, Any], leaf: str
) -> None:
    """§d name ≤50, description ≤2000, attributes ≤10 pairs (key = ID regex ≤36, value ≤200),
    version_ids rules, server addresses are host[:port]."""
    await tts.create_application("app1")
    response = await client.post(
        "/applications/app1/devices",
        json={"end_device": {"ids": {"device_id": "dev1"}, **fields}},
    )
    expect_validation_error(response, leaf)


async def test_field_limits_at_the_edge_are_accepted(tts: TtsApi) -> None:
    """§d the limits are inclusive."""
    await tts.create_application("app1")
    await tts.create_end_device(
        "app1",
        "dev1",
        name="n" * 50,
        description="d" * 2000,
        attributes={f"key-{i}": "v" * 200 for i in range(10)},
        network_server_address="ns.example.com:8884",
    )


async def test_update_validates_only_masked_fields_but_before_existence(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§d Update validates only masked fields; validation happens before any store check, so a
    bad body gives 400 even for a missing entity."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1")
    unmasked = await client.put(
        "/applications/app1/devices/dev1",
        json={
            "end_device": {"name": "ok", "description": "d" * 2001},
            "field_mask": {"paths": ["name"]},
        },
    )
    expect_ok(unmasked)
    missing = await client.put(
        "/applications/app1/devices/ghost",
        json={"end_device": {"name": "n" * 51}, "field_mask": {"paths": ["name"]}},
    )
    expect_validation_error(missing, "name")


async def test_gateway_and_webhook_limits(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§d gateway `frequency_plan_ids` ≤8; §a webhook `base_url` is a URI, `headers` ≤50 pairs,
    `format` follows the ID regex (max 20)."""
    too_many_plans = await client.post(
        f"/users/{ADMIN_USER}/gateways",
        json={
            "gateway": {"ids": {"gateway_id": "gtw1"}, "frequency_plan_ids": [FREQUENCY_PLAN] * 9}
        },
    )
    expect_validation_error(too_many_plans)

    await tts.create_application("app1")
    for webhook in (
        {"base_url": "not a uri", "format": "json"},
        {"base_url": "https://example.com", "format": "JSON!"},
        {
            "base_url": "https://example.com",
            "format": "json",
            "headers": {f"h{i}": "v" for i in range(51)},
        },
    ):
        response = await client.put(
            "/as/webhooks/app1/hook1",
            json={"webhook": webhook, "field_mask": {"paths": sorted(webhook)}},
        )
        expect_validation_error(response)


# ---------------------------------------------------------------------------------------------
# Uniqueness


async def test_is_end_device_euis_taken(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§d IS Create: (JoinEUI, DevEUI) unique across the deployment:
    `pkg/identityserver:end_device_euis_taken`, 409, attributes naming the holder."""
    await tts.create_application("app1")
    await tts.create_application("app2")
    dev_eui, join_eui = new_eui(), new_eui()
    await tts.create_end_device("app1", "dev1", dev_eui=dev_eui, join_eui=join_eui)
    for app_id in ("app1", "app2"):
        response = await client.post(
            f"/applications/{app_id}/devices",
            json={
                "end_device": {
                    "ids": {"device_id": "dev2", "dev_eui": dev_eui, "join_eui": join_eui}
                }
            },
        )
        detail = expect_error(
            response,
            code=ALREADY_EXISTS,
            namespace="pkg/identityserver",
            name="end_device_euis_taken",
        )
        assert {"dev1", "app1"} <= set(map(str, detail["attributes"].values())), detail
    # Same DevEUI under another JoinEUI is a different pair.
    await tts.create_end_device("app2", "dev3", dev_eui=dev_eui, join_eui=new_eui())


async def test_is_end_device_euis_freed_by_delete(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """Deleting the holder (one by one or in a batch) frees its (JoinEUI, DevEUI) pair for a
    new device at once; the pair of a device that stays is still refused."""
    await tts.create_application("app1")
    pairs = {dev_id: (new_eui(), new_eui()) for dev_id in ("dev1", "dev2", "dev3")}
    for dev_id, (dev_eui, join_eui) in pairs.items():
        await tts.create_end_device("app1", dev_id, dev_eui=dev_eui, join_eui=join_eui)
    expect_ok(await client.delete("/applications/app1/devices/dev1"))
    expect_ok(await client.delete("/applications/app1/devices/batch?device_ids=dev2"))
    for old, new in (("dev1", "new1"), ("dev2", "new2")):
        dev_eui, join_eui = pairs[old]
        await tts.create_end_device("app1", new, dev_eui=dev_eui, join_eui=join_eui)
    dev_eui, join_eui = pairs["dev3"]
    response = await client.post(
        "/applications/app1/devices",
        json={
            "end_device": {"ids": {"device_id": "new3", "dev_eui": dev_eui, "join_eui": join_eui}}
        },
    )
    detail = expect_error(
        response, code=ALREADY_EXISTS, namespace="pkg/identityserver", name="end_device_euis_taken"
    )
    assert "dev3" in set(map(str, detail["attributes"].values())), detail


async def test_is_id_taken(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§d duplicate device ID: `pkg/util/store:id_taken`, 409."""
    await tts.create_application("app1")
    await tts.create_end_device("app1", "dev1")
    response = await client.post(
        "/applications/app1/devices", json={"end_device": {"ids": {"device_id": "dev1"}}}
    )
    expect_error(
        response,
        code=ALREADY_EXISTS,
        namespace="pkg/util/store",
        name="id_taken",
        message="ID already taken, choose a different one and try again",
    )


@pytest.mark.parametrize("registry", ["ns", "as", "js"])
async def test_registry_end_device_euis_taken(
    tts: TtsApi, client: httpx.AsyncClient, registry: str
) -> None:
    """§d NS/AS/JS: a duplicate (JoinEUI, DevEUI) on create gives
    `pkg/internal/registry:end_device_euis_taken` (409)."""
    await tts.create_application("app1")
    first = await tts.register_otaa_device("app1", "dev1")
    ids = {"device_id": "dev2", "dev_eui": first["dev_eui"], "join_eui": first["join_eui"]}
    body: dict[str, Any] = {"ids": ids}
    paths = ["ids.device_id"]
    if registry == "ns":
        body |= {
            "supports_join": True,
            "lorawan_version": "MAC_V1_0_2",
            "lorawan_phy_version": "PHY_V1_0_2_REV_B",
            "frequency_plan_id": FREQUENCY_PLAN,
        }
        paths = ["supports_join", "lorawan_version", "lorawan_phy_version", "frequency_plan_id"]
    elif registry == "js":
        body["root_keys"] = {"app_key": {"key": new_key()}}
        paths = ["root_keys.app_key.key"]
    response = await client.put(
        f"/{registry}/applications/app1/devices/dev2",
        json={"end_device": body, "field_mask": {"paths": paths}},
    )
    expect_error(
        response,
        code=ALREADY_EXISTS,
        namespace="pkg/internal/registry",
        name="end_device_euis_taken",
    )


# ---------------------------------------------------------------------------------------------
# Join Server


@pytest.mark.parametrize(
    ("ids", "name"),
    [
        ({"device_id": "dev1", "dev_eui": "70B3D57ED0000001"}, "no_join_eui"),
        ({"device_id": "dev1", "join_eui": "70B3D57ED0000002"}, "no_dev_eui"),
        (
            {"device_id": "dev1", "join_eui": "70B3D57ED0000002", "dev_eui": "0000000000000000"},
            "no_dev_eui",
        ),
    ],
)
async def test_js_requires_both_euis(
    tts: TtsApi, client: httpx.AsyncClient, ids: dict[str, str], name: str
) -> None:
    """§a/§d the JS always requires `ids.join_eui` and `ids.dev_eui` in the body (create and
    update); an all-zero DevEUI counts as missing: `pkg/joinserver:no_join_eui`/`no_dev_eui`."""
    await tts.create_application("app1")
    response = await client.put(
        "/js/applications/app1/devices/dev1",
        json={
            "end_device": {"ids": ids, "root_keys": {"app_key": {"key": new_key()}}},
            "field_mask": {"paths": ["root_keys.app_key.key"]},
        },
    )
    expect_error(response, code=INVALID_ARGUMENT, namespace="pkg/joinserver", name=name)


async def test_js_update_still_requires_euis(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§a "for updates too"."""
    await tts.create_application("app1")
    await tts.register_otaa_device("app1", "dev1")
    response = await client.put(
        "/js/applications/app1/devices/dev1",
        json={
            "end_device": {"ids": {"device_id": "dev1"}, "resets_join_nonces": True},
            "field_mask": {"paths": ["resets_join_nonces"]},
        },
    )
    expect_error(response, code=INVALID_ARGUMENT, namespace="pkg/joinserver", name="no_join_eui")


async def test_js_app_key_must_be_non_zero_when_masked(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§d JS Set: `root_keys.app_key.key` must be non-zero when in the mask."""
    await tts.create_application("app1")
    ids = await tts.register_otaa_device("app1", "dev1")
    response = await client.put(
        "/js/applications/app1/devices/dev1",
        json={
            "end_device": {"ids": {k: ids[k] for k in ("device_id", "dev_eui", "join_eui")}},
            "field_mask": {"paths": ["root_keys.app_key.key"]},
        },
    )
    assert response.status_code == 400, response.text


# ---------------------------------------------------------------------------------------------
# Network Server


def ns_body(ids: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {
        "ids": ids,
        "supports_join": True,
        "lorawan_version": "MAC_V1_0_2",
        "lorawan_phy_version": "PHY_V1_0_2_REV_B",
        "frequency_plan_id": FREQUENCY_PLAN,
        **fields,
    }


OTAA_PATHS = ["supports_join", "lorawan_version", "lorawan_phy_version", "frequency_plan_id"]


async def ns_put(
    client: httpx.AsyncClient, device_id: str, body: dict[str, Any], paths: list[str]
) -> httpx.Response:
    return await client.put(
        f"/ns/applications/app1/devices/{device_id}",
        json={"end_device": body, "field_mask": {"paths": paths}},
    )


@pytest.fixture
async def app1(tts: TtsApi) -> None:
    await tts.create_application("app1")


def otaa_ids(device_id: str = "dev1") -> dict[str, str]:
    return {"device_id": device_id, "dev_eui": new_eui(), "join_eui": new_eui()}


async def test_ns_unknown_frequency_plan_is_404(client: httpx.AsyncClient, app1: None) -> None:
    """§d an unknown plan gives `pkg/frequencyplans:not_found` (404 on a PUT)."""
    body = ns_body(otaa_ids(), frequency_plan_id="NOT_A_PLAN")
    expect_error(
        await ns_put(client, "dev1", body, OTAA_PATHS),
        code=NOT_FOUND,
        namespace="pkg/frequencyplans",
        name="not_found",
    )


async def test_ns_frequency_plan_must_be_set(client: httpx.AsyncClient, app1: None) -> None:
    """§d `frequency_plan_id` must be non-empty if set."""
    body = ns_body(otaa_ids(), frequency_plan_id="")
    response = await ns_put(client, "dev1", body, OTAA_PATHS)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("missing", ["lorawan_version", "lorawan_phy_version"])
async def test_ns_versions_must_be_valid(
    client: httpx.AsyncClient, app1: None, missing: str
) -> None:
    """§d `lorawan_version`/`lorawan_phy_version` must be valid (non-zero)."""
    body = ns_body(otaa_ids())
    del body[missing]
    response = await ns_put(client, "dev1", body, OTAA_PATHS)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == INVALID_ARGUMENT


async def test_ns_band_must_match_frequency_plan(client: httpx.AsyncClient, app1: None) -> None:
    """§d `version_ids.band_id` must match the plan's band (EU_863_870_TTN is EU_863_870)."""
    ok = ns_body(otaa_ids("dev1"), version_ids={"band_id": "EU_863_870"})
    expect_ok(await ns_put(client, "dev1", ok, [*OTAA_PATHS, "version_ids.band_id"]))
    bad = ns_body(otaa_ids("dev2"), version_ids={"band_id": "US_902_928"})
    response = await ns_put(client, "dev2", bad, [*OTAA_PATHS, "version_ids.band_id"])
    assert response.status_code == 400, response.text


async def test_ns_otaa_needs_euis(client: httpx.AsyncClient, app1: None) -> None:
    """§d `supports_join=true` needs non-zero `ids.dev_eui` and `ids.join_eui`."""
    body = ns_body({"device_id": "dev1", "dev_eui": new_eui()})
    response = await ns_put(client, "dev1", body, OTAA_PATHS)
    assert response.status_code == 400, response.text


def abp_body(
    device_id: str,
    *,
    version: str = "MAC_V1_0_2",
    phy: str = "PHY_V1_0_2_REV_B",
    dev_eui: str | None = "new",
    keys: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    ids = {"device_id": device_id}
    if dev_eui:
        ids["dev_eui"] = new_eui() if dev_eui == "new" else dev_eui
    session = {
        "dev_addr": new_dev_addr(),
        "keys": keys if keys is not None else {"f_nwk_s_int_key": {"key": new_key()}},
    }
    return {
        "ids": ids,
        "supports_join": False,
        "lorawan_version": version,
        "lorawan_phy_version": phy,
        "frequency_plan_id": FREQUENCY_PLAN,
        "session": session,
        **fields,
    }


ABP_PATHS = [
    "supports_join",
    "lorawan_version",
    "lorawan_phy_version",
    "frequency_plan_id",
    "session.dev_addr",
    "session.keys.f_nwk_s_int_key.key",
]
ABP_11_PATHS = [
    *ABP_PATHS,
    "session.keys.s_nwk_s_int_key.key",
    "session.keys.nwk_s_enc_key.key",
]


async def test_ns_abp_needs_session(client: httpx.AsyncClient, app1: None) -> None:
    """§d ABP needs `session.dev_addr` + `session.keys.f_nwk_s_int_key.key`."""
    no_session = abp_body("dev1")
    del no_session["session"]
    response = await ns_put(client, "dev1", no_session, ABP_PATHS[:4])
    assert response.status_code == 400, response.text
    no_key = abp_body("dev2", keys={})
    response = await ns_put(client, "dev2", no_key, ABP_PATHS)
    assert response.status_code == 400, response.text
    expect_ok(await ns_put(client, "dev3", abp_body("dev3"), ABP_PATHS))


async def test_ns_abp_1_1_needs_all_network_keys(client: httpx.AsyncClient, app1: None) -> None:
    """§d for LoRaWAN 1.1 ABP also needs `s_nwk_s_int_key` + `nwk_s_enc_key`."""
    partial = abp_body("dev1", version="MAC_V1_1", phy="PHY_V1_1_REV_B")
    response = await ns_put(client, "dev1", partial, ABP_PATHS)
    assert response.status_code == 400, response.text
    full = abp_body(
        "dev2",
        version="MAC_V1_1",
        phy="PHY_V1_1_REV_B",
        keys={
            "f_nwk_s_int_key": {"key": new_key()},
            "s_nwk_s_int_key": {"key": new_key()},
            "nwk_s_enc_key": {"key": new_key()},
        },
    )
    expect_ok(await ns_put(client, "dev2", full, ABP_11_PATHS))


async def test_ns_abp_session_key_id_must_be_zero(client: httpx.AsyncClient, app1: None) -> None:
    """§d for ABP the NS requires `session.keys.session_key_id` to be zero; the path with an empty
    value is fine (the CLI does that)."""
    with_id = abp_body(
        "dev1", keys={"f_nwk_s_int_key": {"key": new_key()}, "session_key_id": "AQID"}
    )
    response = await ns_put(client, "dev1", with_id, [*ABP_PATHS, "session.keys.session_key_id"])
    assert response.status_code == 400, response.text
    empty_id = abp_body("dev2")
    expect_ok(await ns_put(client, "dev2", empty_id, [*ABP_PATHS, "session.keys.session_key_id"]))


async def test_ns_abp_1_0_4_needs_dev_eui_unless_multicast(
    client: httpx.AsyncClient, app1: None
) -> None:
    """§d ABP with MAC ≥1.0.4 needs a DevEUI unless `multicast`."""
    phy = "RP002_V1_0_1"
    no_eui = abp_body("dev1", version="MAC_V1_0_4", phy=phy, dev_eui=None)
    response = await ns_put(client, "dev1", no_eui, ABP_PATHS)
    assert response.status_code == 400, response.text
    multicast = abp_body("dev2", version="MAC_V1_0_4", phy=phy, dev_eui=None, multicast=True)
    expect_ok(await ns_put(client, "dev2", multicast, [*ABP_PATHS, "multicast"]))
    with_eui = abp_body("dev3", version="MAC_V1_0_4", phy=phy)
    expect_ok(await ns_put(client, "dev3", with_eui, ABP_PATHS))


async def test_ns_otaa_session_needs_session_key_id(client: httpx.AsyncClient, app1: None) -> None:
    """§d for OTAA devices carrying a session, `session.keys.session_key_id` is required."""
    session_paths = [*OTAA_PATHS, "session.dev_addr", "session.keys.f_nwk_s_int_key.key"]
    session = {"dev_addr": new_dev_addr(), "keys": {"f_nwk_s_int_key": {"key": new_key()}}}
    response = await ns_put(
        client, "dev1", ns_body(otaa_ids("dev1"), session=session), session_paths
    )
    assert response.status_code == 400, response.text
    session["keys"]["session_key_id"] = "AQIDBA=="
    expect_ok(
        await ns_put(
            client,
            "dev2",
            ns_body(otaa_ids("dev2"), session=session),
            [*session_paths, "session.keys.session_key_id"],
        )
    )


@pytest.mark.parametrize(("field", "value"), [("supports_join", False), ("multicast", True)])
async def test_ns_supports_join_and_multicast_are_immutable(
    tts: TtsApi, client: httpx.AsyncClient, field: str, value: bool
) -> None:
    """§d `supports_join` and `multicast` cannot change after creation:
    `pkg/networkserver:field_value` ("invalid value of field `{field}`")."""
    await tts.create_application("app1")
    ids = await tts.register_otaa_device("app1", "dev1")
    body = {"ids": {k: ids[k] for k in ("device_id", "dev_eui", "join_eui")}, field: value}
    expect_error(
        await ns_put(client, "dev1", body, [field]),
        code=INVALID_ARGUMENT,
        namespace="pkg/networkserver",
        name="field_value",
        message=f"invalid value of field `{field}`",
    )


async def test_ns_class_b_needs_ping_slot_periodicity(
    client: httpx.AsyncClient, app1: None
) -> None:
    """§d Class B needs `mac_settings.ping_slot_periodicity` (a TTS wrapper: bare value, §b)."""
    response = await ns_put(
        client,
        "dev1",
        ns_body(otaa_ids("dev1"), supports_class_b=True),
        [*OTAA_PATHS, "supports_class_b"],
    )
    assert response.status_code == 400, response.text
    ok = ns_body(
        otaa_ids("dev2"),
        supports_class_b=True,
        mac_settings={"ping_slot_periodicity": "PING_EVERY_4S"},
    )
    expect_ok(
        await ns_put(
            client,
            "dev2",
            ok,
            [*OTAA_PATHS, "supports_class_b", "mac_settings.ping_slot_periodicity"],
        )
    )


@pytest.mark.parametrize(
    ("registry", "namespace"),
    [
        ("ns", "pkg/networkserver/redis"),
        ("as", "pkg/applicationserver/redis"),
        ("js", None),
    ],
)
@pytest.mark.parametrize("changed", ["dev_eui", "join_eui"])
async def test_changing_euis_on_update_is_read_only_field(
    tts: TtsApi, client: httpx.AsyncClient, registry: str, namespace: str | None, changed: str
) -> None:
    """§d on update, changing `ids.join_eui`/`ids.dev_eui` gives `read_only_field` (400)."""
    await tts.create_application("app1")
    ids = await tts.register_otaa_device("app1", "dev1")
    new_ids = {k: ids[k] for k in ("device_id", "dev_eui", "join_eui")}
    new_ids[changed] = new_eui()
    response = await client.put(
        f"/{registry}/applications/app1/devices/dev1",
        json={"end_device": {"ids": new_ids}, "field_mask": {"paths": [f"ids.{changed}"]}},
    )
    expect_error(
        response,
        code=INVALID_ARGUMENT,
        namespace=namespace,
        name="read_only_field",
        message=f"read-only field `ids.{changed}`" if namespace else None,
    )


# ---------------------------------------------------------------------------------------------
# Application Server


@pytest.mark.parametrize(
    ("session", "paths"),
    [
        (
            {"keys": {"app_s_key": {"key": new_key()}}},
            ["session.dev_addr", "session.keys.app_s_key.key"],
        ),
        ({"dev_addr": "260B0001"}, ["session.dev_addr", "session.keys.app_s_key.key"]),
    ],
)
async def test_as_session_values_must_be_non_zero_when_masked(
    client: httpx.AsyncClient, app1: None, session: dict[str, Any], paths: list[str]
) -> None:
    """§d AS Set: `session.dev_addr` and `session.keys.app_s_key.key` must be non-zero when in the
    mask."""
    response = await client.put(
        "/as/applications/app1/devices/dev1",
        json={
            "end_device": {"ids": {"device_id": "dev1", "dev_eui": new_eui()}, "session": session},
            "field_mask": {"paths": paths},
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == INVALID_ARGUMENT


async def test_as_create_dev_addr_must_match_session(client: httpx.AsyncClient, app1: None) -> None:
    """§d AS Set on create: `ids.dev_addr` must equal `session.dev_addr`."""
    response = await client.put(
        "/as/applications/app1/devices/dev1",
        json={
            "end_device": {
                "ids": {"device_id": "dev1", "dev_eui": new_eui(), "dev_addr": "260B0001"},
                "session": {"dev_addr": "260B0002", "keys": {"app_s_key": {"key": new_key()}}},
            },
            "field_mask": {"paths": ["session.dev_addr", "session.keys.app_s_key.key"]},
        },
    )
    assert response.status_code == 400, response.text


# ---------------------------------------------------------------------------------------------
# IS address checks


@pytest.mark.parametrize(
    ("field", "error"),
    [
        ("network_server_address", "network_server_address_mismatch"),
        ("application_server_address", "application_server_address_mismatch"),
        ("join_server_address", "join_server_address_mismatch"),
    ],
)
async def test_device_address_must_match_application_host(
    tts: TtsApi, client: httpx.AsyncClient, field: str, error: str
) -> None:
    """§d if the application has an NS/AS/JS address and the device's address has a different
    host, the IS refuses with `*_address_mismatch` (400); only the host counts."""
    await tts.create_application("app1", **{field: "cluster.example.com"})
    response = await client.post(
        "/applications/app1/devices",
        json={"end_device": {"ids": {"device_id": "dev1"}, field: "other.example.com"}},
    )
    expect_error(response, code=INVALID_ARGUMENT, name=error)
    await tts.create_end_device("app1", "dev2", **{field: "cluster.example.com:8884"})


async def test_validation_precedes_rights(tts: TtsApi) -> None:
    """§d validation happens before any rights or store check: a bad body is 400 even from a
    caller without rights on the application."""
    await tts.create_application("app1")
    await tts.create_application("other")
    outsider = tts.client_for(
        await tts.create_application_api_key("other", ["RIGHT_APPLICATION_ALL"])
    )
    response = await outsider.put(
        "/applications/app1/devices/dev1",
        json={"end_device": {"name": "n" * 51}, "field_mask": {"paths": ["name"]}},
    )
    expect_validation_error(response, "name")


@pytest.mark.parametrize("webhook_id", ["Bad_Id", "ab", "x" * 37])
async def test_webhook_id_follows_id_rules(
    client: httpx.AsyncClient, app1: None, webhook_id: str
) -> None:
    """§a `webhook_id` uses the ID regex (max 36)."""
    response = await client.put(
        f"/as/webhooks/app1/{webhook_id}",
        json={
            "webhook": {"base_url": "https://example.com", "format": "json"},
            "field_mask": {"paths": ["base_url", "format"]},
        },
    )
    expect_validation_error(response)


async def test_server_address_forms(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§d device server addresses are `host[:port]`; a gateway's `gateway_server_address` may
    also carry a `scheme://` prefix."""
    await tts.create_gateway("gtw1", new_eui(), gateway_server_address="wss://gs.example.com:8887")
    await tts.create_application("app1")
    response = await client.post(
        "/applications/app1/devices",
        json={
            "end_device": {
                "ids": {"device_id": "dev1"},
                "network_server_address": "https://ns.example.com",
            }
        },
    )
    expect_validation_error(response, "network_server_address")


async def test_application_delete_only_counts_is_devices(
    tts: TtsApi, client: httpx.AsyncClient
) -> None:
    """§a Delete fails with `application_has_devices` only if the IS still holds a device:
    NS/AS/JS entries (orphans, §d) do not block it."""
    await tts.create_application("app1")
    expect_ok(
        await client.put(
            "/as/applications/app1/devices/orphan",
            json={
                "end_device": {"ids": {"device_id": "orphan", "dev_eui": new_eui()}},
                "field_mask": {"paths": ["ids.device_id"]},
            },
        )
    )
    assert expect_ok(await client.delete("/applications/app1")) == {}


async def test_ns_creates_mac_state_with_session(tts: TtsApi, client: httpx.AsyncClient) -> None:
    """§d the NS creates `mac_state` itself when a session is set."""
    await tts.create_application("app1")
    await tts.register_abp_device("app1", "abp1")
    got = expect_ok(
        await client.get("/ns/applications/app1/devices/abp1", params={"field_mask": "mac_state"})
    )
    assert got.get("mac_state"), got


async def test_webhook_message_path_limit(client: httpx.AsyncClient, app1: None) -> None:
    """§a webhook message `path` ≤64 chars, header keys ≤64."""
    for webhook, paths in (
        ({"uplink_message": {"path": "/" + "p" * 64}}, ["uplink_message"]),
        ({"headers": {"h" * 65: "v"}}, ["headers"]),
    ):
        response = await client.put(
            "/as/webhooks/app1/hook1",
            json={
                "webhook": {"base_url": "https://example.com", "format": "json", **webhook},
                "field_mask": {"paths": ["base_url", "format", *paths]},
            },
        )
        expect_validation_error(response)


async def test_creating_an_application_needs_user_right(tts: TtsApi) -> None:
    """§f creating an application under a user needs `RIGHT_USER_APPLICATIONS_CREATE`."""
    await tts.create_user("frank")
    limited = tts.client_for(await tts.create_user_api_key("frank", ["RIGHT_USER_INFO"]))
    response = await limited.post(
        "/users/frank/applications", json={"application": {"ids": {"application_id": "frank-app"}}}
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == 7
    allowed = tts.client_for(
        await tts.create_user_api_key("frank", ["RIGHT_USER_APPLICATIONS_CREATE"])
    )
    expect_ok(
        await allowed.post(
            "/users/frank/applications",
            json={"application": {"ids": {"application_id": "frank-app"}}},
        )
    )
