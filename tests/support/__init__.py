"""Test helpers shared across areas (``tests.support.…``)."""
