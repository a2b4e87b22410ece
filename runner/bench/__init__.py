"""``runner bench``: runner against bare httpx and the openai SDK on one simulator, in separate processes."""
