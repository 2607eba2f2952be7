"""A/B experiments over pipeline configurations: sticky assignment and the statistics that
decide between variants."""
