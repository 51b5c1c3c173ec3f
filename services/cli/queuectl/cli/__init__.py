"""The QueueCTL admin command line."""
