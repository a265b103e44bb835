"""Alembic migrations of the catalog; shipped as a package so an installed ddm can upgrade."""
