"""Tests of mailout.smtp: the sans-I/O core, both drivers, and the unasync generator."""
