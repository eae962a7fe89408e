"""The exit statuses of every `userdebtor` command (CONTRACT.md, "Commands")."""

from __future__ import annotations

EXIT_OK = 0  # done
EXIT_HELD = 1  # a blocking check held a load back (or an invitation was rejected): a person decides
EXIT_BAD_SETUP = 2  # bad settings or an unreachable database, before anything was written
EXIT_FAILED = 3  # a step failed for another reason: a bug, a database error mid-run, emails that exhausted retries
