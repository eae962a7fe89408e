"""The integration's Dagster definitions, one folder per domain (extract, conversions, user_debtor, ...)."""
