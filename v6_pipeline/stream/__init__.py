"""`v6 stream`: IB position events into `position_updates`, with a heartbeat."""
