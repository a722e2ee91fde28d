"""Providers: one small async base class, one module per upstream protocol."""
