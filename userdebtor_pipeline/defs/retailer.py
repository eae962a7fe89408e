"""The retailer a code location serves: its runs' tag and its asset keys' first part."""

from __future__ import annotations

import os
import re

import dagster as dg

# Every run of the job carries the retailer it serves, so one Dagster instance can run many retailers (one code
# location each) with one run at a time per retailer: `tag_concurrency_limits` on this tag in dagster.yaml.
RETAILER_TAG = "userdebtor/retailer"
RETAILER_ENV = "USERDEBTOR_RETAILER"
DEFAULT_RETAILER = "default"


def retailer_name() -> str:
    """The retailer of this code location (USERDEBTOR_RETAILER, set beside its settings file and URLs)."""
    name = os.environ.get(RETAILER_ENV, "").strip() or DEFAULT_RETAILER
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        # It becomes the first part of the location's asset keys, which allow nothing else.
        raise ValueError(f"{RETAILER_ENV} must be letters, digits and _ only, e.g. acme_shop; it is {name!r}")
    return name


def retailer_asset_key(name: str) -> dg.AssetKey:
    """An asset's key in this location: under the retailer's name when one is set (see definitions.py)."""
    retailer = retailer_name()
    return dg.AssetKey([name] if retailer == DEFAULT_RETAILER else [retailer, name])
