"""Alerts a trader trusts: incidents (pure), their words, Apprise delivery, the alert log.

The Dagster sensors (`v6_pipeline/defs/sensors.py`) stay thin: they read Dagster's
records with a cursor, turn them into observations, call `incidents.step`, send the
alerts with `delivery.Courier` and append the outcomes to `alert_log`.
"""
