"""Security: the cluster PKI, TLS contexts and HMAC request signing."""
