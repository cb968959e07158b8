"""Talking to Pingaway: secrets, the token, session login, the HTTP client, payload to records."""
