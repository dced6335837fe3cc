"""Borough reports: request model, params schema, queries, rendering and request files."""
