"""Tests of the service package, one module per service module."""
