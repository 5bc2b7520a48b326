"""Training configs: Python files with get_config(), run with train.py --config."""
