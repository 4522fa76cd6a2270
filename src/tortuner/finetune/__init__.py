"""Training TorToiSe's GPT (UnifiedVoice): fine-tuning on a user's voice, and the lab's from-scratch training."""
