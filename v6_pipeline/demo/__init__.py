"""The demo book: an IB portfolio and a Delta position log that disagree on purpose."""
