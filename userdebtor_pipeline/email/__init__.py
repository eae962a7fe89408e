"""Emails of the integration (rule E1): templates, one-time tokens, the outbox and its delivery.

render_email renders a template (EmailRenderer compiles one for a batch); issue_token(s) store tokens' hashes
and return the tokens for links; queue_email(s) and queue_warning queue in the caller's transaction;
release_held_emails releases the emails held for approval (U3); deliver_outbox delivers the queue to a
Maildir or over SMTP.
"""

from userdebtor_pipeline.email.delivery import (
    DeliveryReport,
    build_message,
    deliver_outbox,
    deliver_with_settings,
    message_id,
)
from userdebtor_pipeline.email.outbox import (
    RULE_ACTIONS,
    RULE_TITLES,
    OutgoingEmail,
    email_queued,
    queue_email,
    queue_emails,
    queue_warning,
    queue_warnings,
    release_held_emails,
)
from userdebtor_pipeline.email.render import (
    BUILTIN_TEMPLATES_DIR,
    TEMPLATES,
    EmailRenderer,
    EmailTemplateError,
    RenderedEmail,
    TemplateSpec,
    available_templates,
    render_email,
    template_problems,
)
from userdebtor_pipeline.email.tokens import (
    TOKEN_PURPOSES,
    hash_token,
    issue_token,
    issue_tokens,
    new_token,
    token_link,
)

__all__ = [
    "BUILTIN_TEMPLATES_DIR",
    "RULE_ACTIONS",
    "RULE_TITLES",
    "TEMPLATES",
    "TOKEN_PURPOSES",
    "DeliveryReport",
    "EmailRenderer",
    "EmailTemplateError",
    "OutgoingEmail",
    "RenderedEmail",
    "TemplateSpec",
    "available_templates",
    "build_message",
    "deliver_outbox",
    "deliver_with_settings",
    "email_queued",
    "hash_token",
    "issue_token",
    "issue_tokens",
    "message_id",
    "new_token",
    "queue_email",
    "queue_emails",
    "queue_warning",
    "queue_warnings",
    "release_held_emails",
    "render_email",
    "template_problems",
    "token_link",
]
