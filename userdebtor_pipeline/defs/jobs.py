"""The sync job people launch (from the UI or `userdebtor sync`); sensors and schedules name it by SYNC_JOB_NAME.

A leaf module: it imports no sensor, schedule or asset module, so nothing can import it back in a circle.
"""

from __future__ import annotations

import dagster as dg

from userdebtor_pipeline.defs.instant_accounts.invite import INVITE_JOB_NAME
from userdebtor_pipeline.defs.retailer import RETAILER_TAG, retailer_name

SYNC_JOB_NAME = "userdebtor_sync"
# On the assets only their own job runs (I4's invitation needs the invitation as config): the sync leaves them.
OWN_JOB_TAG = "userdebtor/own_job"

# One process for the whole run: the run lock and the database pools live for the run, and the work is
# in PostgreSQL anyway, so more processes would only add start-up time.
sync_job = dg.define_asset_job(
    SYNC_JOB_NAME,
    # Everything but I4's invitation, which has its own job (userdebtor_invite) and a config of its own.
    selection=dg.AssetSelection.all() - dg.AssetSelection.tag(OWN_JOB_TAG, INVITE_JOB_NAME),
    executor_def=dg.in_process_executor,
    tags={RETAILER_TAG: retailer_name()},
    description="The whole integration once: extract, conversions, plan, checks, loads, emails.",
)
