"""WSGI entry point for the benchmarks: ``gunicorn bench.wsgi_bench:app`` (the real app + /_bench/* routes)."""
from bench.bench_app import build_app

app = build_app()
