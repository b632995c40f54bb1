"""The command lines: main.py's modes, `compress` (the codec) and `generate` (fill in the blanks)."""
