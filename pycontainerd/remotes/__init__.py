"""The OCI distribution client: talk to registries the way containerd 1.6's
``remotes/docker`` does, with no gRPC and no content store.

Layers (dependencies flow down)::

    fetch.fetch_image / push.push_image      walk an image, call injected writers/readers
    resolver.Resolver                        resolve a name, hand out fetchers and pushers
    fetcher.Fetcher / pusher.Pusher          one blob or manifest at a time, verified
    session.RegistrySession                  requests: auth retries, redirects, error mapping
    auth.Authorizer                          WWW-Authenticate challenges, tokens, credentials
    reference / platforms / mediatypes       pure parsing

I/O goes through an injectable ``httpx.AsyncBaseTransport``; unit tests use
``httpx.MockTransport``.

Errors (from :mod:`pycontainerd.errdefs`, plus :mod:`pycontainerd.remotes.errors`):
a bad reference or digest is ``InvalidArgument``; a missing manifest or blob is ``NotFound``;
a registry that cannot be reached is ``Unavailable``; content whose size or digest does not
match its descriptor is ``FailedPrecondition`` (:class:`~.errors.DigestMismatch`);
401/403 after authentication was tried is :class:`~.errors.Unauthorized`, whose gRPC code is
``UNKNOWN`` exactly as containerd 1.6 reports it (its errdefs has no authentication sentinel).
"""
