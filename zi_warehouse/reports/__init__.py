"""Reports people read: the data-quality report and the quarterly controlling report (German, offline HTML/PDF)."""
