"""Dagster definitions, one file per kind, as Dagster's own projects lay them out."""
