"""Tests of the web-server recipes and of ``aiomodelkit serve``, against real server processes."""
