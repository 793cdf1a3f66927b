"""The root of phe-trace's exception tree.

Every error phe-trace raises on purpose derives from :class:`PheTraceError`. Each part
defines its branch in its ``errors`` module (the command line's three errors sit in the
commands that raise them). Here is the whole tree: each class with its stable ``code``
and, where it lives in another module than its parent, that module (under
``phe_trace.``); every other class lives in the module of its nearest ancestor that names
one::

    PheTraceError                                 phe_trace_error  [errors]
    ├── CryptoError                               crypto_error  [crypto.errors]
    │   ├── InvalidLengthError                    invalid_length
    │   ├── IntervalRangeError                    interval_out_of_range
    │   ├── InvalidMetadataError                  invalid_metadata
    │   │   └── MetadataVersionError              unsupported_metadata_version
    │   └── SealError                             seal_error
    ├── ProtocolError                             protocol_error  [protocol.errors]
    │   ├── AdvertisementError                    invalid_advertisement
    │   ├── TekHmacError                          hmac_invalid
    │   ├── ExportError                           export_invalid
    │   │   ├── ExportFormatError                 export_malformed
    │   │   │   ├── ExportTruncatedError          export_truncated
    │   │   │   └── ExportTooLargeError           export_too_large
    │   │   ├── ExportKeyError                    export_key_invalid
    │   │   ├── ExportIncompleteBatchError        export_batch_incomplete
    │   │   └── ExportSignatureError              export_signature_invalid
    │   │       ├── ExportUnsignedError           export_unsigned
    │   │       ├── ExportSignatureMismatchError  export_signature_mismatch
    │   │       ├── ExportUnknownKeyError         export_unknown_key
    │   │       └── ExportBadSignatureError       export_bad_signature
    │   ├── BatchError                            batch_invalid
    │   │   ├── BatchFormatError                  batch_malformed
    │   │   └── BatchSignatureError               batch_signature_invalid
    │   └── CertificateError                      health_authority_verification_certificate_invalid
    ├── ExposureError                             exposure_error  [exposure.errors]
    │   ├── SightingError                         invalid_sighting
    │   ├── MatchInputError                       invalid_match_input
    │   └── ExposureConfigError                   invalid_exposure_config
    ├── AnalyticsError                            analytics_error  [analytics.errors]
    │   ├── EncodingError                         analytics_encoding
    │   ├── ReportRejectedError                   report_rejected
    │   └── PrivacyBudgetError                    privacy_budget
    ├── AgentError                                agent_error  [agent.errors]
    │   ├── RadioError                            radio_error
    │   │   ├── NoAdapterError                    no_adapter
    │   │   ├── BluezUnavailableError             bluez_unavailable
    │   │   ├── BluezVersionError                 bluez_too_old
    │   │   ├── RadioPermissionError              radio_permission_denied
    │   │   └── RadioStateError                   radio_state
    │   ├── StoreError                            store_error
    │   │   ├── StoreMissingError                 store_missing
    │   │   ├── StoreCorruptError                 store_corrupt
    │   │   └── StoreKeyError                     store_key_mismatch
    │   ├── SyncError                             sync_failed
    │   │   ├── ServerUnavailableError            server_unavailable
    │   │   ├── DownloadError                     download_failed
    │   │   │   └── DownloadTooLargeError         download_too_large
    │   │   ├── ExportNotFoundError               export_not_found
    │   │   └── ExportRejectedError               export_rejected
    │   ├── ReportError                           report_failed
    │   ├── AgentConfigError                      agent_config_invalid
    │   └── AnalyticsConfigError                  analytics_config
    ├── ServerError                               server_error  [server.errors]
    │   ├── ServerConfigError                     config_invalid
    │   ├── PublishError                          bad_request
    │   │   ├── BadRequestError                   bad_request
    │   │   ├── UnknownHealthAuthorityError       unknown_health_authority_id
    │   │   ├── CertificateInvalidError           health_authority_verification_certificate_invalid
    │   │   ├── MissingRevisionTokenError         missing_revision_token
    │   │   ├── InvalidRevisionTokenError         invalid_revision_token
    │   │   ├── KeyAlreadyRevisedError            key_already_revised
    │   │   ├── InvalidTransitionError            invalid_report_type_transition
    │   │   └── HealthAuthorityUnavailableError   unable_to_load_health_authority
    │   ├── DatabaseUnavailableError              unavailable
    │   ├── HealthAuthorityError                  health_authority_invalid
    │   ├── SigningKeyError                       signing_key_invalid
    │   ├── ExportStoreError                      export_not_found
    │   ├── ExportStoreUnavailableError           export_store_unavailable
    │   └── FederationError                       federation_failed
    ├── VerificationError                         verification_error  [verification.errors]
    │   ├── UnparsableRequestError                unparsable_request
    │   ├── UnauthorizedError                     unauthorized
    │   ├── MaintenanceModeError                  maintenance_mode
    │   ├── RateLimitedError                      too_many_requests
    │   ├── QuotaExceededError                    quota_exceeded
    │   ├── CodeSpaceExhaustedError               code_space_exhausted
    │   ├── CodeInvalidError                      code_invalid
    │   ├── CodeExpiredError                      code_expired
    │   ├── InvalidTestTypeError                  invalid_test_type
    │   ├── UnsupportedTestTypeError              unsupported_test_type
    │   ├── MissingDateError                      missing_date
    │   ├── InvalidDateError                      invalid_date
    │   ├── TokenInvalidError                     token_invalid
    │   ├── TokenExpiredError                     token_expired
    │   ├── HmacInvalidError                      hmac_invalid
    │   ├── SignInError                           signin_failed
    │   ├── NotFoundError                         not_found
    │   ├── ConflictError                         conflict
    │   ├── CsrfError                             csrf_invalid
    │   ├── NotSignedInError                      not_signed_in
    │   ├── ForbiddenError                        forbidden
    │   ├── VerificationDatabaseUnavailableError  unavailable
    │   ├── ConfigurationError                    configuration_error
    │   └── InvalidInputError                     invalid_input
    ├── AggregatorError                           aggregator_error  [aggregator.errors]
    │   ├── AggregatorConfigError                 aggregator_config
    │   ├── PeerError                             peer_error
    │   ├── ProtocolViolation                     protocol_violation
    │   └── BatchTooSmall                         batch_too_small
    ├── GatewayError                              gateway_error  [gateway.errors]
    │   ├── GatewayConfigError                    config_invalid
    │   └── GatewayRequestError                   bad_request
    │       ├── NotAuthenticatedError             not_authenticated
    │       ├── BatchRejectedError                batch_rejected
    │       ├── BatchTooLargeError                batch_too_large
    │       ├── BatchTagReusedError               batch_tag_reused
    │       ├── UnsupportedMediaError             unsupported_media_type
    │       ├── GatewayNotFoundError              not_found
    │       └── GoneError                         gone
    ├── ConformanceError                          conformance_error  [conformance.errors]
    │   ├── ConformanceConfigError                conformance_config_invalid
    │   ├── ConformanceFailedError                conformance_failed
    │   ├── CheckFailedError                      check_failed
    │   └── CheckSkippedError                     check_skipped
    ├── SimError                                  sim_error  [sim.errors]
    │   ├── SimConfigError                        sim_config_invalid
    │   └── SimBackendError                       sim_backend_failed
    ├── MissingExtraError                         missing_extra  [cli]
    ├── CliError                                  cli_error  [cli.server]
    ├── NoDataDirError                            no_data_dir  [cli.server_admin]
    └── ServingError                              serving_failed  [serving]

``tests/test_architecture.py`` checks this drawing against the classes that exist: every
exception class of ``phe_trace``, its parent and its code, nothing more.

The HTTP services map these to JSON errors with a stable ``code`` (one way for all:
``phe_trace.web.errors``); the CLI maps them to one line on stderr and a non-zero exit.
``code`` is that stable identifier: it never changes when a class is renamed or moved
(SPEC and clients depend on it). Several classes share a code where they answer the same
(``bad_request``, ``not_found``, ``config_invalid``, ...).

Outside the tree, on purpose (``tests/test_architecture.py`` holds the first four to
their rules; its ``BUILTIN_RAISES`` lists each internal-misuse raise with its reason):

* private control flow inside one module (a class named ``_...``, never mentioned in
  another module, caught where it is raised), e.g. ``agent/download.py``'s retry signals;
* ``ValueError`` raised in a pydantic validator: pydantic turns it into a
  ``ValidationError`` naming the field; a setting's is printed as one line naming its
  environment variable (:mod:`phe_trace.settings`), a request's is answered 400 or 422
  with a stable code;
* the protocols of Python itself: ``AttributeError`` from a module ``__getattr__``,
  ``IndexError`` from ``__getitem__``, ``NotImplementedError`` from an abstract method,
  ``KeyboardInterrupt`` from a signal handler, ``AssertionError`` on an unreachable line;
* a built-in exception on internal misuse that no user, operator or peer input reaches
  (a programming error, e.g. a naive datetime given to the test clock);
* ``HTTPException`` raised by a route: each service answers it with the status's stable
  code (``bad_request``, ``unauthorized``, ...), like its own errors.
"""

from __future__ import annotations

__all__ = ["PheTraceError"]


class PheTraceError(Exception):
    """Base class of every deliberate phe-trace error.

    ``code`` is a stable, machine-readable identifier (snake_case) that the server
    puts in JSON error bodies and the CLI may print; subclasses override it.
    """

    code: str = "phe_trace_error"
