"""Datasets, synthetic-data generators and data transforms."""
