"""SQL storage for exchanges: schema, engine, the batched writer, privacy, reads and purges.

Imports only ``core`` among Understudy's packages. The schema is migrated by
``migrations``. Import what you need from its modules; nothing is imported
here, so a light module (settings, time parsing) does not pull in SQLAlchemy.
"""
