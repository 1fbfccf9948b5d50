"""Control maps from the scene: the one Cycles render behind them and the maps written from it."""
