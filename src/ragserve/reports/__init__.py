"""Reports readable without the service: self-contained HTML pages with embedded figures."""
