"""Control maps from the scene: the one Cycles render behind them and the maps written from it; the
light reference (the scene's lights on grey clay, one render too) that relighting follows."""
