"""Conversions: the ERP's debtor code conversions, received and applied on the web before anything else (C1-C4)."""
