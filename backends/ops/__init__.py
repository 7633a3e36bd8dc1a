"""The ops backend: hardware inventory across warehouses and an operations ticket queue."""
