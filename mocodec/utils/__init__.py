"""Small helpers every part of mocodec shares: tables, bootstrap intervals, seeded construction, worker processes."""
