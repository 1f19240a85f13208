"""What is kept: the gallery (SQLite, or a site's central PostgreSQL store and a kiosk's
replica), the audit log, the admin PIN."""
