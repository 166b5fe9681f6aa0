"""Authentication (SigV4, API keys, OIDC/JWT) and authorization (roles, service scopes)."""
