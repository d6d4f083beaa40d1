"""A second sensor: event-camera recordings (readers of the common formats, read in time
windows), their alignment to video snippets, the maps an event encoder sees, and a
physically-based simulator of an event camera watching a video."""
