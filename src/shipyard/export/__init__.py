"""Exporting packages to existing serving engines: a Triton model repository, a Ray Serve app."""
