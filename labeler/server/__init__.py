"""The embedded Argilla server: the only package that runs argilla_server code."""
