"""The command line and the ways to run a gateway: serve, stdio, demo, tools, status, audit verify."""
