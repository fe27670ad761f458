"""Bad input answers 400 in Mattermost's error shape and writes nothing: a NUL character in any string the server
takes (JSON bodies, query and path parameters, webhook payloads), an integer query parameter past the one bound.

Each case goes through real HTTP to a real server; what it could have written is read before and after."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

import workspace_server
from workspace_server.web import INT_MAX

ERROR_KEYS = {"id", "message", "detailed_error", "request_id", "status_code"}
NUL = "a\u0000b"
BEYOND_BIGINT = str(2**64)
BODY_PARAM = "api.context.invalid_body_param.app_error"
URL_PARAM = "api.context.invalid_url_param.app_error"


@dataclass(frozen=True)
class World:
    """What the cases act on: the admin's id and session, the team, a channel, a post and a webhook."""

    user: str
    team: str
    channel: str
    post: str
    hook: str


@pytest.fixture(scope="module")
def api(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.base_url}/api/v4", timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def world(api: httpx.Client, admin: Any, server: Any) -> World:
    login = api.post("/users/login", json={"login_id": admin.username, "password": admin.password})
    assert login.status_code == 200, login.text
    api.headers["Authorization"] = f"Bearer {login.headers['Token']}"
    user = login.json()["id"]
    team = api.get(f"/teams/name/{server.team_name}").json()["id"]
    channel = api.post("/channels", json={"team_id": team, "name": "bad-input", "display_name": "Bad input"})
    assert channel.status_code == 201, channel.text
    channel_id = channel.json()["id"]
    post = api.post("/posts", json={"channel_id": channel_id, "message": "hello"})
    hook = api.post("/hooks/incoming", json={"channel_id": channel_id})
    assert post.status_code == 201 and hook.status_code == 201, (post.text, hook.text)
    return World(user, team, channel_id, post.json()["id"], hook.json()["id"])


def assert_bad_request(response: httpx.Response, error_id: str) -> None:
    """A 400 in Mattermost's error shape, with ``error_id``."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert (body["id"], body["status_code"]) == (error_id, 400)
    assert body["request_id"] == response.headers["x-request-id"]


def snapshot(api: httpx.Client, paths: list[str]) -> list[Any]:
    """What the server answers at ``paths``: compared before and after a refused request."""
    responses = [api.get(path) for path in paths]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


def assert_refused_and_unchanged(
    api: httpx.Client, request: tuple[str, str, Any], watched: list[str], error_id: str
) -> None:
    """Send ``request`` (method, path, JSON body): a 400 with ``error_id``, and ``watched`` reads the same after."""
    method, path, body = request
    before = snapshot(api, watched)
    assert_bad_request(api.request(method, path, json=body), error_id)
    assert snapshot(api, watched) == before


# (method, path, JSON body, paths whose answers must not change); paths are formatted with the World's fields.
NUL_IN_BODIES: dict[str, tuple[str, str, Any, list[str]]] = {
    "user patch nickname": ("PUT", "/users/{user}/patch", {"nickname": NUL}, ["/users/{user}"]),
    "user patch first name": ("PUT", "/users/{user}/patch", {"first_name": NUL}, ["/users/{user}"]),
    "user patch last name": ("PUT", "/users/{user}/patch", {"last_name": NUL}, ["/users/{user}"]),
    "user patch position": ("PUT", "/users/{user}/patch", {"position": NUL}, ["/users/{user}"]),
    "user patch props": ("PUT", "/users/{user}/patch", {"props": {"k": NUL}}, ["/users/{user}"]),
    "user patch prop name": ("PUT", "/users/{user}/patch", {"props": {NUL: "v"}}, ["/users/{user}"]),
    "user patch notify props": ("PUT", "/users/{user}/patch", {"notify_props": {"desktop": NUL}}, ["/users/{user}"]),
    "user patch timezone": ("PUT", "/users/{user}/patch", {"timezone": {"manualTimezone": NUL}}, ["/users/{user}"]),
    "user update nickname": ("PUT", "/users/{user}", {"id": "{user}", "nickname": NUL}, ["/users/{user}"]),
    "new user nickname": (
        "POST",
        "/users",
        {"email": "nul@acme.test", "username": "nul", "password": "a-long-password", "nickname": NUL},
        ["/users?per_page=200"],
    ),
    "login id": ("POST", "/users/login", {"login_id": NUL, "password": "whatever"}, ["/users/{user}"]),
    "channel display name": (
        "POST",
        "/channels",
        {"team_id": "{team}", "name": "nul-display", "display_name": NUL},
        ["/users/{user}/teams/{team}/channels"],
    ),
    "channel purpose": (
        "POST",
        "/channels",
        {"team_id": "{team}", "name": "nul-purpose", "display_name": "x", "purpose": NUL},
        ["/users/{user}/teams/{team}/channels"],
    ),
    "channel header": (
        "POST",
        "/channels",
        {"team_id": "{team}", "name": "nul-header", "display_name": "x", "header": NUL},
        ["/users/{user}/teams/{team}/channels"],
    ),
    "team display name": ("POST", "/teams", {"name": "nul-team", "display_name": NUL}, ["/teams"]),
    "team purpose": ("POST", "/teams", {"name": "nul-team", "display_name": "x", "description": NUL}, ["/teams"]),
    "search terms": ("POST", "/posts/search", {"terms": NUL}, []),
    "team search terms": ("POST", "/teams/{team}/posts/search", {"terms": NUL}, []),
    "post patch message": ("PUT", "/posts/{post}/patch", {"message": NUL}, ["/posts/{post}"]),
    "post patch props": ("PUT", "/posts/{post}/patch", {"props": {"k": NUL}}, ["/posts/{post}"]),
    "post update message": ("PUT", "/posts/{post}", {"id": "{post}", "message": NUL}, ["/posts/{post}"]),
    "new post root id (fast path)": (
        "POST",
        "/posts",
        {"channel_id": "{channel}", "message": "x", "root_id": NUL},
        ["/channels/{channel}/posts"],
    ),
    "bot display name": ("POST", "/bots", {"username": "nulbot", "display_name": NUL}, ["/bots?include_deleted=true"]),
    "bot description": ("POST", "/bots", {"username": "nulbot", "description": NUL}, ["/bots?include_deleted=true"]),
    "token description": ("POST", "/users/{user}/tokens", {"description": NUL}, ["/users/{user}/tokens"]),
    "webhook display name": (
        "POST",
        "/hooks/incoming",
        {"channel_id": "{channel}", "display_name": NUL},
        ["/hooks/incoming"],
    ),
}


def formatted(value: Any, world: World) -> Any:
    """``value`` with ``{field}`` placeholders in its strings (keys and values, nested) filled from ``world``."""
    if isinstance(value, str):
        return value.format(**vars(world)) if "\x00" not in value else value
    if isinstance(value, dict):
        return {formatted(k, world): formatted(v, world) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(formatted(item, world) for item in value)
    return value


@pytest.mark.parametrize("case", NUL_IN_BODIES.values(), ids=NUL_IN_BODIES.keys())
def test_a_nul_in_a_json_body_is_refused(
    api: httpx.Client, world: World, case: tuple[str, str, Any, list[str]]
) -> None:
    method, path, body, watched = formatted(case, world)
    assert_refused_and_unchanged(api, (method, path, body), watched, BODY_PARAM)


def test_a_json_escaped_backslash_before_u0000_is_text(api: httpx.Client, world: World) -> None:
    # "\\u0000" in JSON is a backslash followed by "u0000": six characters a message may hold.
    response = api.post("/posts", json={"channel_id": world.channel, "message": "a \\u0000 literal"})
    assert response.status_code == 201, response.text
    assert api.get(f"/posts/{response.json()['id']}").json()["message"] == "a \\u0000 literal"


NUL_IN_PATHS = {
    "username": "/users/username/a%00b",
    "email": "/users/email/a%00b@acme.test",
    "team name": "/teams/name/a%00b",
    "channel name in a named team": "/teams/name/acme/channels/name/a%00b",
    "channel name": "/teams/{team}/channels/name/a%00b",
}


@pytest.mark.parametrize("path", NUL_IN_PATHS.values(), ids=NUL_IN_PATHS.keys())
def test_a_nul_in_a_path_parameter_is_refused(api: httpx.Client, world: World, path: str) -> None:
    assert_bad_request(api.get(path.format(**vars(world))), URL_PARAM)


def test_a_nul_in_a_deleted_reaction_name_is_refused(api: httpx.Client, world: World) -> None:
    reaction = {"user_id": world.user, "post_id": world.post, "emoji_name": "smile"}
    assert api.post("/reactions", json=reaction).status_code == 200
    request = ("DELETE", f"/users/{world.user}/posts/{world.post}/reactions/a%00b", None)
    assert_refused_and_unchanged(api, request, [f"/posts/{world.post}/reactions"], URL_PARAM)


NUL_IN_QUERIES = {
    "users in team": "/users?in_team=a%00b",
    "users sort": "/users?sort=a%00b",
    "posts before": "/channels/{channel}/posts?before=a%00b",
    "autocomplete name": "/users/autocomplete?name=a%00b",
}


@pytest.mark.parametrize("path", NUL_IN_QUERIES.values(), ids=NUL_IN_QUERIES.keys())
def test_a_nul_in_a_query_parameter_is_refused(api: httpx.Client, world: World, path: str) -> None:
    assert_bad_request(api.get(path.format(**vars(world))), URL_PARAM)


BIG_QUERY_INTEGERS = {
    "users page": "/users?page={big}",
    "posts page": "/channels/{channel}/posts?page={big}",
    "posts page times per_page past bigint": "/channels/{channel}/posts?page=100000000000000000&per_page=200",
    "posts since": "/channels/{channel}/posts?since={big}",
    "channel members page": "/channels/{channel}/members?page={big}",
    "team members page": "/teams/{team}/members?page={big}",
    "teams page": "/teams?page={big}",
    "bots page": "/bots?page={big}",
    "webhooks page": "/hooks/incoming?page={big}",
    "tokens page": "/users/{user}/tokens?page={big}",
    "deleted channels since": "/users/{user}/channels?include_deleted=true&last_delete_at={big}",
}


@pytest.mark.parametrize("path", BIG_QUERY_INTEGERS.values(), ids=BIG_QUERY_INTEGERS.keys())
def test_an_integer_query_parameter_past_the_bound_is_refused(api: httpx.Client, world: World, path: str) -> None:
    assert_bad_request(api.get(path.format(big=BEYOND_BIGINT, **vars(world))), URL_PARAM)


def test_the_bound_itself_is_accepted(api: httpx.Client, world: World) -> None:
    assert api.get(f"/channels/{world.channel}/posts?page={INT_MAX}&per_page=200").json()["order"] == []
    assert api.get(f"/channels/{world.channel}/posts?since={INT_MAX}").status_code == 200


SEARCH_PAGING = "api.post.search_posts.invalid_body.app_error"
BIG_SEARCH_INTEGERS: dict[str, tuple[dict[str, Any], str]] = {
    "page": ({"terms": "x", "page": 2**64}, SEARCH_PAGING),
    "per_page": ({"terms": "x", "per_page": 2**64}, SEARCH_PAGING),
    "time_zone_offset": ({"terms": "on:2026-01-01", "time_zone_offset": 2**64}, BODY_PARAM),
}


@pytest.mark.parametrize("case", BIG_SEARCH_INTEGERS.values(), ids=BIG_SEARCH_INTEGERS.keys())
def test_search_integers_past_their_bounds_are_refused(
    api: httpx.Client, world: World, case: tuple[dict[str, Any], str]
) -> None:
    body, error_id = case
    assert_bad_request(api.post(f"/teams/{world.team}/posts/search", json=body), error_id)


WEBHOOK_BODIES: dict[str, dict[str, Any]] = {
    "json": {"json": {"text": NUL}},
    "form": {"data": {"payload": '{"text": "a\\u0000b"}'}},
    "multipart": {"files": {"payload": (None, '{"text": "a\\u0000b"}')}},
}


@pytest.mark.parametrize("request_args", WEBHOOK_BODIES.values(), ids=WEBHOOK_BODIES.keys())
def test_a_nul_in_a_webhook_payload_is_refused(
    api: httpx.Client, server: Any, world: World, request_args: dict[str, Any]
) -> None:
    before = snapshot(api, [f"/channels/{world.channel}/posts"])
    response = httpx.post(f"{server.base_url}/hooks/{world.hook}", **request_args)
    expected = BODY_PARAM if "json" in request_args else "web.incoming_webhook.parse.app_error"
    assert_bad_request(response, expected)
    assert snapshot(api, [f"/channels/{world.channel}/posts"]) == before


def _routes() -> Iterator[APIRoute]:
    """Every route of every ``workspace_server`` module with a ``router``."""
    for module_info in pkgutil.iter_modules(workspace_server.__path__):
        if module_info.name.startswith("_"):
            continue
        router = getattr(importlib.import_module(f"workspace_server.{module_info.name}"), "router", None)
        if isinstance(router, APIRouter):
            yield from (route for route in router.routes if isinstance(route, APIRoute))


def test_every_integer_query_parameter_is_bounded() -> None:
    unbounded = []
    for route in _routes():
        dependants = [route.dependant]
        for dependant in dependants:  # grows as it goes: the route's dependencies, nested
            dependants += dependant.dependencies
            for param in dependant.query_params:
                if param.field_info.annotation not in (int, int | None):
                    continue
                bounds = [getattr(m, "le", None) for m in param.field_info.metadata]
                if not any(b is not None and b <= INT_MAX for b in bounds):
                    unbounded.append(f"{route.path} {param.name}")
    assert unbounded == []
