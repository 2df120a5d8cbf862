"""marshmallow shapes of the API: ``<Thing>InputSchema`` parses, ``<Thing>OutputSchema`` serialises.
The OpenAPI document is generated from these classes."""
