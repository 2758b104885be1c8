"""The Azure Functions host's part, for machines without Core Tools: the app runs on Azure's own
Python runtime (``azure-functions-runtime``, driven as Azure's proxy worker drives it) and the
host serves its HTTP routes, Event Grid webhook and timers, with the site beside them.
``event_grid`` stands in for Event Grid over Azurite, and ``dev`` runs the whole stack."""
