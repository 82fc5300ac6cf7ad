#!/bin/sh
# Patroni runs this once, on the first primary, right after initdb, with a superuser connection
# URL as its argument (and PGPASSFILE set): it creates the service's database. The service's own
# migrations (`homecare migrate`) create everything in it.
set -eu
exec /usr/lib/postgresql/15/bin/psql "$1" -v ON_ERROR_STOP=1 -q -c 'CREATE DATABASE homecare'
