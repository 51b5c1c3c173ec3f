"""End-to-end tests: the queuectl command line as users run it."""
