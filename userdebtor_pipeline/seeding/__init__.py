"""The parts of `userdebtor seed` (userdebtor_pipeline/seed.py): pools, the SQL session, ERP rows, web rows."""
