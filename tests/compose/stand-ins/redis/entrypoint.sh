#!/bin/sh
# As the official image: reachable from the other containers (protected mode off).
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
