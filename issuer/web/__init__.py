"""Thin HTTP layer: parse with a schema, call one service, serialise."""
