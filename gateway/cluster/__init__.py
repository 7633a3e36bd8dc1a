"""Running as one of several processes: state shared through a store, messages between replicas."""
