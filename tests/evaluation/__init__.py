"""Tests of the evaluation package (gan-evaluate), one module per evaluation module."""
