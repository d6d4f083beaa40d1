"""One module per family of event-recording formats; each defines a Recording subclass."""
