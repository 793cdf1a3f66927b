-- PostgreSQL database for the key server (and, optionally, the verification service).
-- Run as a superuser: psql -f postgres-setup.sql, then set a password for the role.
CREATE ROLE phetrace LOGIN;
CREATE DATABASE phetrace OWNER phetrace;
-- The key server creates and migrates its tables (prefix ks_, Alembic version table
-- alembic_version_keyserver) on start; nothing else is needed here.
