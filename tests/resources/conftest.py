"""Unit tests of the pure validators in ``persys.resources``: no etcd, no Docker, tables of cases."""
