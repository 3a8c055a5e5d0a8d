"""Where the shipped config and scenarios live: the source tree, or inside the installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # intercept/


def bundled_root() -> Path:
    """The folder holding `config/` and `scenarios/` as shipped."""
    wheel = _PACKAGE / "_bundled"
    if (wheel / "config").is_dir():
        return wheel
    return _PACKAGE.parent  # a source checkout or an editable install


def default_config_path() -> Path:
    """`./config/intercept.toml` when present, else the shipped default."""
    local = Path("config/intercept.toml")
    if local.is_file():
        return local
    return bundled_root() / "config" / "intercept.toml"
