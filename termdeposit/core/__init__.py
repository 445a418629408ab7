"""The ground floor: configuration, errors, logging, the column schema and money.

Nothing here imports from any other room of the package."""
