"""tortuner: make TorToiSe-TTS fine-tunable again (recover its dVAE tokenizer, prepare data, fine-tune, export)."""

__version__ = "0.1.0"
