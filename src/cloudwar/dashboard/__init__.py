"""The live dashboard: ``cloudwar serve`` starts :mod:`cloudwar.dashboard.app` in a Solara server."""
