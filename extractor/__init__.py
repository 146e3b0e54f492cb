"""extractor: streams the Discogs XML dumps onto RabbitMQ."""
