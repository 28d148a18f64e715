"""Hardware cost models (gate level, RRAM crossbars). Imports core only."""
