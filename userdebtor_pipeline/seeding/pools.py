"""The small pools the bulk SQL picks from: names, streets and suburbs from Faker en_AU, the same for the same seed."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

_STREET_TYPES = (
    "Street", "Road", "Avenue", "Parade", "Crescent", "Drive", "Court", "Place", "Lane", "Close",
    "Way", "Terrace", "Highway", "Boulevard", "Grove",
)  # fmt: skip


# State, weight (roughly by population), first and last postcode.
_STATES = (
    ("NSW", 31, 2000, 2599), ("VIC", 26, 3000, 3999), ("QLD", 20, 4000, 4999), ("WA", 11, 6000, 6797),
    ("SA", 7, 5000, 5799), ("TAS", 2, 7000, 7799), ("ACT", 2, 2600, 2618), ("NT", 1, 800, 899),
)  # fmt: skip


_TRADE_WORDS = (
    "Plumbing", "Electrical", "Building", "Landscaping", "Carpentry", "Roofing", "Painting",
    "Air Conditioning", "Tiling", "Fencing", "Concreting", "Glazing", "Joinery", "Pool Services",
    "Hardware", "Construction", "Maintenance", "Solar",
)  # fmt: skip


_PUBLIC_BODIES = (
    "City Council", "Shire Council", "Regional Council", "Public School", "TAFE Campus",
    "District Hospital", "Water Authority",
)  # fmt: skip


# Reserved `.example` domains: a demo configured for SMTP can never mail a real person.
PERSONAL_DOMAINS = (
    "gmail.example", "bigpond.example", "outlook.example", "hotmail.example", "icloud.example",
    "optusnet.example", "yahoo.example", "iinet.example", "tpg.example",
)  # fmt: skip


_PRODUCT_FAMILIES = ("TAP", "PIPE", "VALVE", "CABLE", "SWITCH", "LAMP", "SCREW", "BOLT", "PAINT", "TILE")


_RECENT_ORDER_STATUSES = ("10", "30", "50", "60", "61", "70")


STORE_DOMAIN = "store.example"


@dataclass(frozen=True)
class Pools:
    """Small lists that the bulk SQL picks from; `*_slugs` are the e-mail-safe spellings."""

    first_names: list[str]
    first_slugs: list[str]
    surnames: list[str]
    surname_slugs: list[str]
    streets: list[str]
    suburbs: list[str]
    states: list[str]
    postcodes: list[str]
    products: list[str]

    def as_params(self) -> dict[str, Any]:
        return {
            "first_names": self.first_names,
            "first_slugs": self.first_slugs,
            "surnames": self.surnames,
            "surname_slugs": self.surname_slugs,
            "streets": self.streets,
            "suburbs": self.suburbs,
            "states": self.states,
            "postcodes": self.postcodes,
            "products": self.products,
            "trade_words": list(_TRADE_WORDS),
            "trade_slugs": [slug(w) for w in _TRADE_WORDS],
            "public_bodies": list(_PUBLIC_BODIES),
            "domains": list(PERSONAL_DOMAINS),
            "recent_statuses": list(_RECENT_ORDER_STATUSES),
        }


def slug(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower()) or "x"


def _distinct(draw: Any, size: int) -> list[str]:
    """Up to `size` distinct values of `draw()`; gives up quietly when Faker has fewer."""
    seen: dict[str, None] = {}
    for _ in range(size * 20):
        seen.setdefault(draw(), None)
        if len(seen) == size:
            break
    return list(seen)


def build_pools(seed: int) -> Pools:
    """Names, streets and suburbs from Faker en_AU, the same for the same seed."""
    from faker import Faker

    fake = Faker("en_AU")
    fake.seed_instance(seed)
    first_names = _distinct(fake.first_name, 500)
    surnames = _distinct(fake.last_name, 500)
    streets = _distinct(lambda: f"{fake.last_name()} {fake.random_element(_STREET_TYPES)}", 300)
    weights = OrderedDict((state, weight) for state, weight, _, _ in _STATES)
    ranges = {state: (low, high) for state, _, low, high in _STATES}
    suburbs, states, postcodes = [], [], []
    for suburb in _distinct(fake.city, 200):
        state = fake.random_element(weights)
        suburbs.append(suburb)
        states.append(state)
        postcodes.append(f"{fake.random_int(*ranges[state]):04d}")
    products = _distinct(lambda: f"{fake.random_element(_PRODUCT_FAMILIES)}-{fake.numerify('####')}", 300)
    return Pools(
        first_names=first_names,
        first_slugs=[slug(n) for n in first_names],
        surnames=surnames,
        surname_slugs=[slug(n) for n in surnames],
        streets=streets,
        suburbs=suburbs,
        states=states,
        postcodes=postcodes,
        products=products,
    )


def cash_account_email() -> str:
    return f"counter.sales@{STORE_DOMAIN}"
