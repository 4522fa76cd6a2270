"""Pure `nn.Module`s and their configurations. Nothing here reads or writes files."""
