"""The graph writer's statements as they were before the graph-cost work (main at 275787c),
frozen so the bench can run them beside today's on the same records (docs/performance.md)."""
