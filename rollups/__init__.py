"""Everything chain-specific: chain specs and one handler per RPC type.

Owns: method classes, compute units per method, cache policy, health probe, height and
identity extraction, response checks and header policy, and the chain catalogue. The
gateway and the relayer dispatch to it and never know chains themselves.

Entry points::

    from rollups import catalogue, handler_for, load_spec, probe

    spec = catalogue()["eth"]              # or load_spec("chains/my-rollup.toml")
    handler = handler_for(spec.rpc_type)   # an RpcHandler (rollups.handler)
    call = handler.parse_relay(payload)    # relayer: exactly one request
    plan = handler.plan(spec, call)        # class, compute units, role, retry rules
    health = await probe(spec, backend_url, http_session)

Modules: ``handler`` (the interface and its dataclasses — start there), ``base`` (the
table-driven handler every RPC type builds on), ``methods`` (the one method-table shape),
``finality`` (cache decisions by finality), ``spec`` (the TOML chain spec model), ``loading``
(reading specs and checking them against their handler), ``registry`` (rpc_type → handler),
``jsonrpc`` (parsing, error bodies, cache keys), ``health`` (the HTTP probe), ``catalogue``
(shipped specs), ``evm`` (Ethereum, OP stack, Arbitrum), ``errors``.
"""

from rollups.catalogue import catalogue, catalogue_spec, load_catalogue
from rollups.errors import (
    BatchNotRelayableError,
    InvalidParamsError,
    InvalidRequestError,
    MethodDeniedError,
    MethodNotFoundError,
    ParseError,
    RequestError,
    RollupsError,
    SpecError,
    UnknownRpcTypeError,
    WritesDisabledError,
)
from rollups.handler import (
    DEFAULT_ROLE,
    AnswerCheck,
    CachePolicy,
    Call,
    CallPlan,
    HeaderPolicy,
    Health,
    HealthStatus,
    Heights,
    InvalidCall,
    MethodClass,
    MethodPolicy,
    ParsedRequest,
    Pinning,
    ProbeAnswer,
    ProbeRequest,
    RetryMode,
    RetryPolicy,
    RpcHandler,
    SubscriptionCall,
)
from rollups.health import probe
from rollups.jsonrpc import (
    JsonRpcCode,
    error_response,
    is_cacheable_answer,
    jsonrpc_error,
)
from rollups.loading import load_spec, parse_spec
from rollups.registry import handler_for, register, rpc_types
from rollups.spec import ChainSpec

__all__ = [
    "DEFAULT_ROLE",
    "AnswerCheck",
    "BatchNotRelayableError",
    "CachePolicy",
    "Call",
    "CallPlan",
    "ChainSpec",
    "HeaderPolicy",
    "Health",
    "HealthStatus",
    "Heights",
    "InvalidCall",
    "InvalidParamsError",
    "InvalidRequestError",
    "JsonRpcCode",
    "MethodClass",
    "MethodDeniedError",
    "MethodNotFoundError",
    "MethodPolicy",
    "ParseError",
    "ParsedRequest",
    "Pinning",
    "ProbeAnswer",
    "ProbeRequest",
    "RequestError",
    "RetryMode",
    "RetryPolicy",
    "RollupsError",
    "RpcHandler",
    "SpecError",
    "SubscriptionCall",
    "UnknownRpcTypeError",
    "WritesDisabledError",
    "catalogue",
    "catalogue_spec",
    "error_response",
    "handler_for",
    "is_cacheable_answer",
    "jsonrpc_error",
    "load_catalogue",
    "load_spec",
    "parse_spec",
    "probe",
    "register",
    "rpc_types",
]
