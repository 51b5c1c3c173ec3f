"""The QueueCTL worker: a pool of threads that run job commands."""
