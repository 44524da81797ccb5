"""The dashboard's screens besides the main one: help."""
