"""The finance backend: quarterly department budgets and the expenses booked against them."""
