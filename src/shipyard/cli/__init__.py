"""The ``shipyard`` command: thin verbs over the library."""
