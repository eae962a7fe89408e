"""The Dagster code location: each domain's assets and checks, then the jobs, schedules and sensors, then the
resources, merged into one `Definitions` (how the domains are found and grouped: defs/domains.py)."""

from __future__ import annotations

import dagster as dg

from userdebtor_pipeline.defs.domains import automation_definitions, domain_definitions
from userdebtor_pipeline.defs.resources import default_resources

defs = dg.Definitions.merge(
    *domain_definitions(),
    automation_definitions(),
    dg.Definitions(resources=default_resources()),
)
