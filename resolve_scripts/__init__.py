"""DaVinci Resolve integration: menu scripts, the logic behind them, and `edidub resolve`."""
