"""Fine-tuning TorToiSe's GPT (UnifiedVoice) on a voice: dataset -> training loop (exact resume) -> export -> speak."""
