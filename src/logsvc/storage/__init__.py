"""Where log entries are kept: the port (``port``), its adapters (``sqlite``, ``dynamodb``) and the choice of
adapter by URL (``open``). Adapters import the port, never the opener that chooses them."""
