"""labeler's benchmarks: `scripts/dev bench [startup|throughput|memory ...]`."""
