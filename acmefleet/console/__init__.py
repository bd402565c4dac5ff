"""The console: organisations, domains, EAB credentials and the inventory, for administrators."""
