"""I4: a merchant opens an instant account for a customer, from `userdebtor invite` or the Dagster launchpad.

The invite job files a `web.registration_request` and runs the same assets a sync runs for it (the extract,
I1's `registration_decisions` with its blocking check, `instant_accounts_opened`, email delivery), so the
request is decided by I1 at once with the same guards: nothing here decides anything itself.
`invitation_decided` reads the verdict back and closes the run's row; it leaves the plan watermark alone,
since this run planned nothing of the user/debtor sync.
"""

import dagster as dg
import sqlalchemy as sa

from userdebtor_pipeline.defs.extract.assets import sync_run_started
from userdebtor_pipeline.defs.resources import WebDatabase
from userdebtor_pipeline.defs.retailer import retailer_asset_key

INVITE_GROUP = "invite"
INVITE_JOB_NAME = "userdebtor_invite"

# A rerun of the same invitation finds its request still pending instead of filing a second one.
_PENDING_SQL = sa.text(
    "SELECT request_id FROM web.registration_request WHERE status = 'pending'"
    " AND lower(btrim(email_address)) = lower(btrim(:email))"
    " AND upper(coalesce(nullif(btrim(account_code), ''), '')) = upper(coalesce(nullif(btrim(:account), ''), ''))"
    " ORDER BY request_id LIMIT 1"
)
_FILE_SQL = sa.text(
    "INSERT INTO web.registration_request (email_address, account_code) VALUES (:email, nullif(btrim(:account), ''))"
    " RETURNING request_id"
)
_NOTE_SQL = sa.text(
    "UPDATE userdebtor.sync_run SET summary = summary || jsonb_build_object('invitation_request_id', :id)"
    " WHERE run_id = :run_id"
)
_VERDICT_SQL = sa.text(
    "SELECT r.request_id, r.email_address, r.account_code, r.status, r.reason, r.user_id"
    " FROM userdebtor.sync_run s JOIN web.registration_request r"
    "   ON r.request_id = CAST(s.summary->>'invitation_request_id' AS bigint)"
    " WHERE s.run_id = :run_id"
)
_CLOSE_RUN_SQL = sa.text(
    "UPDATE userdebtor.sync_run SET finished_at = now(), outcome = 'succeeded'"
    " WHERE run_id = :run_id AND outcome IS NULL"
)


class InvitationConfig(dg.Config):
    """Who is invited: the customer's email and, optionally, the account the merchant means."""

    email: str
    account: str | None = None


@dg.asset(
    group_name=INVITE_GROUP,
    deps=[sync_run_started],
    description="I4: files the merchant's invitation as a registration request (once per email and account).",
)
def merchant_invitation(context: dg.AssetExecutionContext, config: InvitationConfig,
                        web: WebDatabase) -> dg.MaterializeResult:
    params = {"email": config.email, "account": config.account or ""}
    with web.engine.begin() as conn:
        request_id = conn.execute(_PENDING_SQL, params).scalar()
        filed = request_id is None
        if filed:
            request_id = conn.execute(_FILE_SQL, params).scalar_one()
        conn.execute(_NOTE_SQL, {"id": request_id, "run_id": context.run_id})
    return dg.MaterializeResult(metadata={"request_id": int(request_id), "filed": filed,
                                          "account": config.account or ""})


@dg.asset(
    group_name=INVITE_GROUP,
    deps=[dg.AssetKey("instant_accounts_opened"), dg.AssetKey("emails_delivered")],
    description="I4: the invitation's verdict by I1 (approved, or rejected with the reason); closes the run.",
)
def invitation_decided(context: dg.AssetExecutionContext, web: WebDatabase) -> dg.MaterializeResult:
    with web.engine.begin() as conn:
        verdict = conn.execute(_VERDICT_SQL, {"run_id": context.run_id}).mappings().one()
        conn.execute(_CLOSE_RUN_SQL, {"run_id": context.run_id})
    context.log.info(f"invitation {verdict['request_id']}: {verdict['status']}: {verdict['reason'] or ''}")
    return dg.MaterializeResult(metadata={
        "request_id": int(verdict["request_id"]),
        "status": str(verdict["status"]),
        "reason": str(verdict["reason"] or ""),
        "user_id": int(verdict["user_id"]) if verdict["user_id"] is not None else -1,
        "account": str(verdict["account_code"] or ""),
    })


assets = [merchant_invitation, invitation_decided]

# The extract and I1's plan (with its blocking check), then I1's load and the delivery of its email.
invite_job = dg.define_asset_job(
    INVITE_JOB_NAME,
    selection=(
        dg.AssetSelection.assets(retailer_asset_key("registration_decisions")).upstream()
        | dg.AssetSelection.assets(*(retailer_asset_key(name) for name in (
            "instant_accounts_opened", "emails_delivered", "invitation_decided")))
    ),
    executor_def=dg.in_process_executor,
    description="I4: a merchant opens an instant account: config ops.merchant_invitation.config "
    "{email, account}; decided by I1 at once.",
)
