"""API tokens: parsing the environment and the file, roles, revocation by editing the file."""

from __future__ import annotations

import os

import pytest

from intercept.errors import ConfigError
from intercept.http.auth import (
    Authenticator,
    AuthError,
    Principal,
    Role,
    authenticate,
    parse_tokens_env,
)

from helpers import make_config

T1, T2, T3 = "a" * 20, "b" * 20, "c" * 20


def test_tokens_from_the_environment():
    tokens = parse_tokens_env(f"admin:{T1}:root, viewer:{T2}\nadvocate:{T3}:sam")
    assert [t.principal for t in tokens] == [
        Principal("root", Role.admin), Principal("viewer-2", Role.viewer),
        Principal("sam", Role.advocate)]
    assert parse_tokens_env("") == []


@pytest.mark.parametrize("text, message", [
    (f"boss:{T1}", "entry 1: unknown role 'boss'; use viewer, advocate or admin"),
    ("admin", "entry 1 is not 'role:token[:name]'"),
    (f"admin:{T1},viewer:", "entry 2 is not 'role:token[:name]'"),
    ("admin:short:root", "entry 1: the token of 'root' is shorter than 16 characters"),
])
def test_bad_environment_tokens_are_named(text, message):
    with pytest.raises(ConfigError, match=r"^INTERCEPT_API_TOKENS: ") as info:
        parse_tokens_env(text)
    assert message in str(info.value)


def test_tokens_file_is_read_relative_to_the_config_and_reloaded(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# role token name\nadvocate {T1} sam\n\nviewer {T2}  # no name\n")
    config = make_config(api={"tokens": f"admin:{T3}:root", "tokens_file": "tokens"})
    config.source = str(tmp_path / "intercept.toml")
    auth = Authenticator.from_config(config)
    assert auth.find(T1) == Principal("sam", Role.advocate)
    assert auth.find(T2) == Principal("viewer-line4", Role.viewer)
    assert auth.find(T3) == Principal("root", Role.admin)
    assert auth.find("z" * 20) is None
    path.write_text(f"viewer {T2} val\n")  # sam's line is deleted: his token stops working
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    assert auth.find(T1) is None
    assert auth.find(T2) == Principal("val", Role.viewer)
    path.write_text("nonsense\n")  # a broken edit keeps the tokens read before
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))
    assert auth.find(T2) == Principal("val", Role.viewer)


def test_a_bad_tokens_file_stops_the_start(tmp_path):
    config = make_config(api={"tokens_file": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match=r"api\.tokens_file: cannot read .*missing"):
        Authenticator.from_config(config)
    (tmp_path / "bad").write_text(f"admin {T1}\nroot\n")
    config = make_config(api={"tokens_file": str(tmp_path / "bad")})
    with pytest.raises(ConfigError, match=r"bad:2: expected 'role token \[name\]'"):
        Authenticator.from_config(config)
    config = make_config(api={"tokens": f"admin:{T1}:a,viewer:{T1}:b"})
    with pytest.raises(ConfigError, match="the token of 'b' is configured twice"):
        Authenticator.from_config(config)


def test_the_environment_fills_the_api_section():
    from intercept.config import config_from_dict

    config = config_from_dict({}, environ={"INTERCEPT_API_TOKENS": f"admin:{T1}",
                                           "INTERCEPT_API_TOKEN": T1})
    assert config.api.tokens == f"admin:{T1}" and config.api.token == T1


def test_roles_401_and_403():
    auth = Authenticator(parse_tokens_env(f"viewer:{T1}:val,admin:{T2}:root"))

    def status(header, needed=Role.viewer):
        try:
            return authenticate(auth, header, needed)
        except AuthError as exc:
            return exc.status, exc.reason

    assert status(None) == (401, "missing")
    assert status("Bearer") == (401, "malformed")
    assert status(f"Token {T1}") == (401, "malformed")
    assert status(f"Bearer {T3}") == (401, "invalid")
    assert status(f"bearer {T1}") == Principal("val", Role.viewer)
    assert status(f"Bearer {T1}", Role.advocate) == (403, "")
    assert status(f"Bearer {T2}", Role.admin) == Principal("root", Role.admin)


def test_without_tokens_nobody_is_admin():
    """Where a request comes from proves nothing: no token, no access, even from loopback."""
    nobody = Authenticator([])
    for header in (None, f"Bearer {T1}"):
        with pytest.raises(AuthError) as info:
            authenticate(nobody, header, Role.viewer)
        assert info.value.status == 401
