"""The shipped scenarios, one TOML file each (package data)."""
