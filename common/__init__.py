"""Shared runtime of the Discogs consumers: settings, logging, records, batching, AMQP, health."""
