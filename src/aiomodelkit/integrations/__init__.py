"""Integrations with serving frameworks, each behind an extra and imported on first use.

* :mod:`aiomodelkit.integrations.ray_serve`: a module of models as a Ray Serve deployment
  with model multiplexing (``pip install 'aiomodelkit[ray]'``).

Importing this package, or a module in it, never imports the framework: that happens when
a function that needs it is called, and raises :class:`~aiomodelkit.ConfigError` naming the
``pip install`` if the extra is missing.
"""
