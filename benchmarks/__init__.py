"""radops side by side with raw boto3, joblib.Memory, open() and typer: ``python -m benchmarks``."""
