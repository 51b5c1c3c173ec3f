"""The QueueCTL scheduler: promotes due retries and delayed jobs."""
