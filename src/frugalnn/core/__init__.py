"""The substrate every method stands on. Imports no method and no hw module."""
