"""The catalog: ORM tables and the query/command functions over them (catalog layer).

Public functions take a session first, never commit, and return frozen records from
`ddm.catalog.records`; nothing ORM-shaped leaves this package.
"""
