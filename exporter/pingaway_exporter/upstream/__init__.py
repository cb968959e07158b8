"""Talking to Pingaway: the token, session login, the HTTP client and its deadline, payload to records."""
