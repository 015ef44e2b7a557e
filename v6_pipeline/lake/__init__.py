"""The lake side: Delta tables of positions, snapshots and discrepancies."""
