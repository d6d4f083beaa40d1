"""The uncertainty-weighted fusion model, its fusion rules, its training losses and its checkpoint
files."""
