"""Running a gateway at runtime: the admin API, the dashboard, backends changed while it serves, reloads."""
