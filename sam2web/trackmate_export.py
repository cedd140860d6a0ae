"""TrackMate XML export (placeholder until the writer lands)."""
