"""resdepth's version, in a module of its own so that any module can name it without importing the
notebook API in `resdepth/__init__.py`."""

__version__ = "0.1.0"
