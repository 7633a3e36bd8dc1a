"""The hr backend: employees, leave balances and requests, and the policy handbook."""
