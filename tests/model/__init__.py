"""Tests of the network layer (`model/`)."""
