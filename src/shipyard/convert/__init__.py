"""Converters: each turns a source or an artifact into an artifact of another format."""
