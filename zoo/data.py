"""Placeholder: datasets are being written."""
