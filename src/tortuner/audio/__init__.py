"""Audio I/O and the two mel spectrograms TorToiSe uses."""
