"""Request building, configuration and error mapping, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from immich_sync.adapters import immich_search as plan
from immich_sync.adapters.immich_config import ImmichConfig
from immich_sync.adapters.immich_http import error_text, most_specific_tags
from immich_sync.errors import BadInput

AFTER = datetime(2025, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "version,expected",
    [
        pytest.param((1, 120, 0), [{"withArchived": True}], id="v1.120-withArchived"),
        pytest.param(
            (1, 133, 0), [{"visibility": v} for v in ("timeline", "archive", "hidden")], id="v1.133-per-visibility"
        ),
        pytest.param(
            (2, 7, 5), [{"visibility": v} for v in ("timeline", "archive", "hidden")], id="v2.7.5-per-visibility"
        ),
        pytest.param((3, 1, 0), [{}], id="v3.1-visibility-omitted"),
    ],
)
def test_flat_passes_by_version(version, expected):
    assert plan.flat_passes(version) == expected


def test_filters_are_sent_as_instants_and_never_to_a_server_without_them():
    body = plan.flat_passes((3, 1, 0), updated_after=AFTER, updated_before=AFTER, album_id="a")[0]
    assert body == {
        "updatedAfter": "2025-06-30T00:00:00.000Z",
        # the server keeps microseconds: the next millisecond, so that `--before=<a returned updatedAt>`
        # keeps that asset (the client drops what lies past the user's bound)
        "updatedBefore": "2025-06-30T00:00:00.001Z",
        "albumIds": ["a"],
    }
    with pytest.raises(ValueError):
        plan.flat_passes((1, 130, 0), album_id="a")
    with pytest.raises(ValueError):
        plan.flat_passes((1, 120, 0), tag_id="t")


def test_cursor_body_filters_trash_explicitly():
    body = plan.cursor_body(updated_after=AFTER, album_id="a")
    assert body["filter"]["trashedAt"] == {"eq": None}
    assert body["filter"]["visibility"] == {"in": ["timeline", "archive", "hidden"]}
    assert body["filter"]["updatedAt"] == {"gte": "2025-06-30T00:00:00.000Z"}
    assert body["filter"]["albumIds"] == {"all": ["a"]}
    assert not {"page", "visibility", "updatedAfter"} & body.keys()  # mixing shapes is a 400


def response(status: int, body: bytes, headers: dict | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code, r._content = status, body
    r.headers.update(headers or {})
    return r


@pytest.mark.parametrize(
    "status,body,headers,expected",
    [
        pytest.param(
            400,
            b'{"message":["a must be x","b must be y"],"error":"Bad Request","statusCode":400,"correlationId":"abc"}',
            {},
            "HTTP 400 a must be x; b must be y (correlation id abc)",
            id="v1-list-message",
        ),
        pytest.param(
            400,
            b'{"message":"Validation failed","errors":[{"message":"Invalid ISO datetime"}]}',
            {"X-Correlation-ID": "k9"},
            "HTTP 400 Validation failed: Invalid ISO datetime (correlation id k9)",
            id="v3-zod-errors",
        ),
        pytest.param(
            403,
            b'{"message":"Missing required permission: asset.read"}',
            {},
            "HTTP 403 Missing required permission: asset.read",
            id="v3-permission",
        ),
        pytest.param(502, b"<html>Bad gateway</html>", {}, "HTTP 502 <html>Bad gateway</html>", id="proxy-html"),
    ],
)
def test_error_text(status, body, headers, expected):
    assert error_text(response(status, body, headers)) == expected


def test_most_specific_tag_keeps_an_asset_on_the_child_only():
    values = {"t": "Travel", "p": "Travel/Paris", "f": "Family"}
    found = {"t": frozenset({"a", "b"}), "p": frozenset({"a"}), "f": frozenset({"a"})}
    assert most_specific_tags(values, found) == {"t": frozenset({"b"}), "p": frozenset({"a"}), "f": frozenset({"a"})}


def test_config_from_env_file_and_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("IMMICH_URL=https://photos.example/api/\nIMMICH_API_KEY=secret-key-123\n")
    config = ImmichConfig.from_env(environ={})
    assert config.url == "https://photos.example/api/" and config.api_key == "secret-key-123"
    assert "secret-key-123" not in repr(config)
    assert config.verify is True
    env_wins = ImmichConfig.from_env(environ={"IMMICH_INSTANCE_URL": "http://other", "IMMICH_INSECURE_TLS": "1"})
    assert env_wins.url == "http://other" and env_wins.verify is False


@pytest.mark.parametrize(
    "environ,message",
    [
        pytest.param({}, "IMMICH_INSTANCE_URL is not set", id="no-url"),
        pytest.param(
            {"IMMICH_INSTANCE_URL": "http://x", "IMMICH_API_KEY": "  "}, "IMMICH_API_KEY is not set", id="empty-key"
        ),
        pytest.param(
            {"IMMICH_INSTANCE_URL": "photos.local", "IMMICH_API_KEY": "k"}, "must start with http", id="no-scheme"
        ),
        pytest.param(
            {"IMMICH_INSTANCE_URL": "http://x", "IMMICH_API_KEY": "k", "IMMICH_CA_BUNDLE": "/nope.pem"},
            "IMMICH_CA_BUNDLE",
            id="missing-ca-bundle",
        ),
    ],
)
def test_config_errors_name_the_variable_and_the_file(tmp_path, monkeypatch, environ, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput) as raised:
        ImmichConfig.from_env(environ=environ)
    assert message in str(raised.value)
    if "not set" in message:
        assert str(tmp_path / ".env") in str(raised.value)


def test_named_env_file_must_exist(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        ImmichConfig.from_env(tmp_path / "missing.env", environ={})


def test_the_environment_is_read_once_and_still_honoured(tmp_path, monkeypatch):
    """requests would read the proxies, the CA bundle and ~/.netrc on every request; the connection
    reads them once, with the same outcome, and IMMICH_CA_BUNDLE still wins over REQUESTS_CA_BUNDLE."""
    from immich_sync.adapters.immich_http import ImmichConnection

    bundle = tmp_path / "ca.pem"
    bundle.write_text("not read here")
    (tmp_path / ".netrc").write_text("machine photos.example login ann password s3cret\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "nas.lan")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    conn = ImmichConnection(ImmichConfig(url="https://photos.example", api_key="k"))
    assert conn.session.trust_env is False
    assert conn.session.proxies.get("https") == "http://proxy.example:3128"
    assert conn.session.verify == str(bundle)
    assert conn.session.auth == ("ann", "s3cret")
    own = tmp_path / "own.pem"
    own.write_text("not read here")
    conn = ImmichConnection(ImmichConfig(url="https://nas.lan", api_key="k", ca_bundle=str(own)))
    assert conn.session.proxies == {}  # NO_PROXY names it
    assert conn.session.verify == str(own)
    assert conn.session.auth is None
