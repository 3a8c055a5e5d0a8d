"""Our numbers indexed for the console's pages, rebuilt when a reload replaced them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config


class NumberIndex:
    """Each of our numbers' city key, city name and kind, and the cities as (key, name).

    A reload (SIGHUP, `intercept scenario reload`, the API) replaces the running config's
    `[[numbers]]` and `[cities]` in place; every read here looks whether they changed first."""

    def __init__(self, config: Config):
        self._config = config
        self._seen: tuple[object, object] | None = None
        self._city_of: dict[str, str] = {}
        self._city_label: dict[str, str] = {}
        self._kind_of: dict[str, str] = {}
        self._cities: list[tuple[str, str]] = []

    def _fresh(self) -> None:
        config = self._config
        if self._seen is not None and self._seen[0] is config.numbers \
                and self._seen[1] is config.cities:
            return
        names = {key: city.name for key, city in config.cities.items()}
        self._city_of = {n.number: n.city for n in config.numbers}
        self._city_label = {n.number: names.get(n.city, n.city) for n in config.numbers}
        self._kind_of = {n.number: n.kind for n in config.numbers}
        self._cities = sorted(names.items())
        self._seen = (config.numbers, config.cities)

    @property
    def city_of(self) -> dict[str, str]:
        """Our number -> its city key."""
        self._fresh()
        return self._city_of

    @property
    def city_label(self) -> dict[str, str]:
        """Our number -> its city's name."""
        self._fresh()
        return self._city_label

    @property
    def kind_of(self) -> dict[str, str]:
        """Our number -> buyer or outreach."""
        self._fresh()
        return self._kind_of

    @property
    def cities(self) -> list[tuple[str, str]]:
        """(key, name) of every city, by key."""
        self._fresh()
        return self._cities
