"""Build script: pure-Python package plus the Cython/OpenMP extension (pyconv._cy)."""
from setuptools import setup

setup()
