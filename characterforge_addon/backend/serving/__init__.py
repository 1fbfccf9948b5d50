"""Serving jobs: the HTTP API, the server's start, the job queue and its worker, the durable job
store, and Ray Serve replicas. May import engine, jobs, models, families, core; nothing imports it but __main__."""
