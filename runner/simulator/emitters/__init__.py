"""The simulator's emitters: one module per dialect, each deciding the bytes of that provider's answers."""
