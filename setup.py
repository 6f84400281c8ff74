"""Build hook for the native order book.

pyproject.toml carries the metadata; this file exists only because setuptools takes
``cffi_modules`` as a ``setup()`` keyword (as argon2-cffi-bindings does). The extension
``trading.native._orderbook`` is compiled by ``pip install -e .``.
"""
from setuptools import setup

setup(cffi_modules=["trading/native/build_ffi.py:ffibuilder"])
