"""The benchmark suite: the gateway beside a direct connection and beside its peers (``python -m bench``)."""
