"""`v6 doctor`: everything a run needs, checked in order, one line per item."""
