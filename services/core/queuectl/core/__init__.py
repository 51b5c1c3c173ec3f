"""QueueCTL's shared core: settings, keys, the job record, the Redis store and the client."""
