"""One module per resource (STYLE: full-stack-fastapi-template's `api/routes/`)."""
