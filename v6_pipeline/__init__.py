"""v6_pipeline: reconcile Interactive Brokers positions with the Delta Lake position log."""
