"""Instant accounts (I1-I3): self-service sign-ups decided from the ERP, login checks, email verification."""
