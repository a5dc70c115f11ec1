"""Container runtimes behind the CRI-shaped interface in base.py."""
