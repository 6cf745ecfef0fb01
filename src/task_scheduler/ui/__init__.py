"""The dashboard at /ui: server-rendered pages over the same services and roles as the API."""
