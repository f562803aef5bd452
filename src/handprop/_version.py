"""handprop's version, in a module of its own so that the math modules can
record it in the files they write without importing the whole package."""

__version__ = "0.3.0"
