"""Speed and memory benchmarks (plain scripts: python bench/<name>.py --help)."""
