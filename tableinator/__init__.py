"""tableinator: Discogs records into PostgreSQL by COPY and an ON CONFLICT merge."""
