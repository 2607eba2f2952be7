"""Who may call: API keys and their scopes, and the cipher that keeps tenants' secrets at rest."""
