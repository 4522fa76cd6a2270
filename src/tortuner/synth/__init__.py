"""Synthetic [mel, tokens] pairs from the public GPT and renderer."""
