"""Who may post events: client certificates (verified by the TLS handshake) and bearer tokens.

With a CA bundle the TLS layer asks every client for a certificate (``CERT_OPTIONAL``:
kubelet probes of /healthz come without one) and rejects any certificate the CA did not
sign. uvicorn does not put the peer certificate into the ASGI scope, so
:func:`peer_cert_protocol` wraps its HTTP protocol class to place the verified
certificate in the connection's ``scope["state"]``; the app then requires a verified
certificate or a known bearer token on /audit and /admission.
"""

from __future__ import annotations

import hmac
from typing import Any

__all__ = ["Authenticator", "cert_names", "peer_cert_protocol"]

PEER_KEY = "kubehawk.tls_peer"


def peer_cert_protocol(base: type) -> type:
    class PeerCertProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            peer = ssl_object.getpeercert() if ssl_object is not None else None
            if peer:
                # A per-connection copy: the scope of each request on this connection sees it.
                self.app_state = {**self.app_state, PEER_KEY: peer}

    PeerCertProtocol.__name__ = f"PeerCert{base.__name__}"
    return PeerCertProtocol


def cert_names(peer: dict[str, Any]) -> set[str]:
    """The subject CN(s) and DNS subjectAltNames of a verified certificate."""
    names = {v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"}
    names |= {v for k, v in peer.get("subjectAltName", ()) if k == "DNS"}
    return names


class Authenticator:
    def __init__(self, tokens: list[str], client_ca: bool, client_names: list[str]) -> None:
        self._tokens = [t.encode() for t in tokens]
        self.client_ca = client_ca
        self.client_names = set(client_names)
        self.required = bool(tokens) or client_ca

    def check(self, scope: dict[str, Any]) -> str | None:
        """None when the caller may proceed, otherwise the reason it may not."""
        if not self.required:
            return None
        peer = (scope.get("state") or {}).get(PEER_KEY)
        if peer and self.client_ca:
            if not self.client_names or cert_names(peer) & self.client_names:
                return None
            return f"client certificate {sorted(cert_names(peer))} is not in server.client_names"
        token = _bearer(scope)
        if token is not None and self._tokens:
            ok = False
            for t in self._tokens:  # compare with every token: no early exit timing leak
                ok |= hmac.compare_digest(token, t)
            return None if ok else "invalid bearer token"
        wants = " or ".join(w for w, on in (("a client certificate", self.client_ca),
                                            ("a bearer token", bool(self._tokens))) if on)
        return f"authentication required: {wants}"


def _bearer(scope: dict[str, Any]) -> bytes | None:
    for k, v in scope.get("headers", ()):
        if k == b"authorization":
            scheme, _, value = v.partition(b" ")
            if scheme.lower() == b"bearer" and value.strip():
                return value.strip()
            return None
    return None
