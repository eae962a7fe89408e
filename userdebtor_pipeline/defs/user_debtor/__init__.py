"""Users and debtors, both ways (U1-U7): plan, checks that gate each load, loads."""
