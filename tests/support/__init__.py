"""Test support: processes, clients and a controllable job kind."""
