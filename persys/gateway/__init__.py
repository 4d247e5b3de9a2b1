"""The gateway: people and tools in front of the API servers, logged in with GitHub.

``persys gateway`` is stateless (any number may run) and holds no etcd connection: it proxies the
resource API, the reconciliation routes, logs and watches to the API servers it discovers, under
its own certificate (role ``gateway``) and impersonation headers naming the logged-in user; it
issues its own short-lived signed tokens after a GitHub login (device flow for the CLI, web flow
with PKCE for browsers) and keeps its sessions as Secrets through the API.
"""
