"""Interactive Brokers: the TWS API wire protocol and the gateway emulator."""
