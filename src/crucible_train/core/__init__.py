"""Core layer: pure training logic that depends only on ports and shared vocabulary."""

from __future__ import annotations
