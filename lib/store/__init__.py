"""Data access: the only package that imports pymongo. Speaks the domain's language."""
