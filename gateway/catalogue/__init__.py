"""The catalogue: what the backends offer, under the names each client sees, a page at a time."""
