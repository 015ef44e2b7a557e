"""The Dagster UI as a user sees it: real Chromium against a real `dagster dev`."""
