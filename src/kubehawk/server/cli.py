"""``kubehawk serve``: run the audit/admission webhook receiver (registered by kubehawk.cli)."""

from __future__ import annotations

import logging
import ssl
import sys
from pathlib import Path

import click

__all__ = ["serve"]


def _fail(msg: str) -> None:
    click.echo(f"kubehawk serve: {msg}", err=True)
    sys.exit(2)


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="kubehawk.yaml: business context, outputs: and server: sections.")
@click.option("--host", help="Address to listen on (server.listen; default 0.0.0.0).")
@click.option("--port", type=int, help="Port (server.port; default 8443).")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="Server certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="Server private key (PEM).")
@click.option("--client-ca", type=click.Path(dir_okay=False),
              help="CA bundle: callers may authenticate with a certificate it signed.")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="Bearer tokens accepted from callers, one per line.")
@click.option("--journal", help="Journal database path (server.journal).")
@click.option("--max-body", help="Request size limit, e.g. 32MiB (server.max_body_bytes).")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True),
              help="More Sigma rules (repeatable).")
@click.option("--no-builtin", is_flag=True, help="Do not load the built-in rule pack.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def serve(config_path: str | None, host: str | None, port: int | None, tls_cert: str | None, tls_key: str | None,
          client_ca: str | None, token_file: str | None, journal: str | None, max_body: str | None,
          rule_dirs: tuple[str, ...], no_builtin: bool, log_level: str) -> None:
    """Receive audit events (kube-apiserver webhook backend, POST /audit) and admission
    reviews (POST /admission), store them durably, detect, and send alerts to the outputs."""
    import uvicorn
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    from kubehawk.config import Config, ConfigError
    from kubehawk.server.app import Service, create_app
    from kubehawk.server.auth import peer_cert_protocol
    from kubehawk.server.settings import ServerSettings
    from kubehawk.sinks import build_sink_list

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = Config.load(config_path) if config_path else Config()
        settings = ServerSettings.build(config.server, {
            "listen": host, "port": port, "tls_cert": tls_cert, "tls_key": tls_key, "client_ca": client_ca,
            "token_file": token_file, "journal": journal, "max_body_bytes": max_body,
        })
        Path(settings.journal).parent.mkdir(parents=True, exist_ok=True)
        sinks = build_sink_list(config.outputs, spool_dir=Path(settings.journal).parent)
    except ConfigError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot create the journal directory: {e}")

    from kubehawk.cliutil import load_rules
    from kubehawk.detect import Detector

    ruleset = load_rules(config, rule_dirs, not no_builtin, "kubehawk serve")
    detector = Detector(ruleset, config)
    detector.on_warning = logging.getLogger("kubehawk.server").warning  # a wrong-typed value in an alerted event
    try:
        service = Service(settings, detector, sinks, config)
    except (OSError, ValueError) as e:
        _fail(f"cannot open the journal {settings.journal}: {e}")
    except ConfigError as e:
        _fail(str(e))
    if not settings.auth_required:
        logging.getLogger("kubehawk.server").warning(
            "no client_ca and no tokens configured: anyone who can reach %s:%d may post events",
            settings.listen, settings.port)
    app = create_app(service)
    protocol = peer_cert_protocol(import_from_string(HTTP_PROTOCOLS["auto"]))
    uv = uvicorn.Config(
        app, host=settings.listen, port=settings.port, http=protocol, lifespan="on", log_level=log_level,
        access_log=log_level == "debug", timeout_keep_alive=75, timeout_graceful_shutdown=30,
        ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key, ssl_ca_certs=settings.client_ca,
        ssl_cert_reqs=ssl.CERT_OPTIONAL if settings.client_ca else ssl.CERT_NONE,
    )
    try:
        uvicorn.Server(uv).run()
    except ssl.SSLError as e:
        _fail(f"TLS setup failed: {e}")
