"""The hidden-teacher lab: a small TorToiSe world whose tokenizer is withheld, to measure tokenizer recovery."""
