"""Tests of the OFX plugin room (a package so its conftest never shadows another room's)."""
