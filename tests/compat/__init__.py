"""The compatibility matrix (issue 14): one scenario against every installable server."""
