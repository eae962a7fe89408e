"""Sensors that start runs when something changed."""

from __future__ import annotations

sensors: list = []
