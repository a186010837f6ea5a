"""pytest plugin entry point (filled in by the bench issue)."""
