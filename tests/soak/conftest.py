"""The soak run is a script run on demand (``python tests/soak/run_soak.py --minutes 10``), never a
test: pytest must not import it (it starts processes for minutes)."""
collect_ignore = ["run_soak.py"]
