"""What training and evaluation read: list CSVs and their rules, annotations, frame-level ground
truth, feature files and the in-memory training bank."""
