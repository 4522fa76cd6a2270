"""Recovering TorToiSe's withheld dVAE from the public models: distill, decoder, recon, eval, baseline."""
