"""How the four benchmarks differ: labels, metrics, list and event names and training presets, as
data."""
