"""Providers: one folder per managed system, each behind the provider contract."""
