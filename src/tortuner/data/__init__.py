"""Data stages: turning audio into dVAE tokens (`tokenize`) and long recordings into datasets (`prepare`)."""
