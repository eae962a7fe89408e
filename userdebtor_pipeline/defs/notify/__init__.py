"""Notify: deliver the queued emails and close the run."""
