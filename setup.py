"""Shim for Beam's ``--setup_file``: Dataflow workers run ``python setup.py sdist`` on it.

All metadata lives in pyproject.toml; this file only lets Beam package the project.
"""

from setuptools import setup

setup()
