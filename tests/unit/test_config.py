"""Config: defaults, validation, one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.config import ConfigError, load, parse, render_default


def test_default_file_parses_to_defaults(tmp_path: Path) -> None:
    config = parse(render_default("example.org", "0.0.0.0:8448", True), tmp_path)
    assert config.server_name == "example.org"
    assert config.registration.enabled is True
    assert config.database.synchronous == "FULL"
    assert config.listen_host == "0.0.0.0"
    assert config.listen_port == 8448
    assert config.base_url == "http://localhost:8448"
    assert config.database_path == tmp_path / "homeserver.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('server_name = "x"\nlisten = 5', "listen: Expected `str`, got `int`"),
        ('server_name = "x"\n[database]\nreader_threads = "a"', "database.reader_threads"),
        ('server_name = "x"\nbogus = 1', "unknown key"),
        ('server_name = "x"\nlisten = "nope"', "listen: expected HOST:PORT"),
        ('server_name = "x"\nlisten = "h:99999"', "out of range"),
        ('server_name = "bad name!"', "server_name"),
        ('server_name = "x"\npublic_baseurl = "ftp://x"', "public_baseurl"),
        ("listen = ", "not valid TOML"),
        ("", "server_name"),
        ('server_name = "x"\n[database]\nsynchronous = "OFF"', "database.synchronous"),
    ],
)
def test_invalid_config_names_the_key(text: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dendrite-lite init"):
        load(tmp_path)


def test_ipv6_listen(tmp_path: Path) -> None:
    config = parse('server_name = "x"\nlisten = "[::1]:8008"', tmp_path)
    assert config.listen_host == "::1"
    assert config.base_url == "http://[::1]:8008"
