"""Operating the integration from a terminal: what the last runs did, what waits for a person, and settling it.

`status` reports runs, open conflicts, records set aside, pending conversions, the email backlog and the
watermarks; `conflicts` settles U4 conflicts held by `conflict_policy: hold`; `data_docs` writes the reports a
failed blocking check links to.
"""
