"""Running the reconciliation job from a shell: `v6 reconcile`, the printout, the instance."""
