"""``cloudwar serve``: start the live dashboard (:mod:`cloudwar.dashboard.app`) in a Solara server.

The command replaces itself with ``python -m solara run cloudwar.dashboard.app`` in production mode, bound
to 127.0.0.1 unless ``--host`` says otherwise. It works without internet when the front-end
assets are in Solara's asset cache (``scripts/dashboard-assets.sh`` puts them there): Solara's
server then answers every ``/_solara/cdn/...`` request from ``<venv>/share/solara/cdn/``.
Telemetry and the PyPI version check are switched off, so the server makes no outside calls.

The command's arguments are parsed in :mod:`cloudwar.cli.serve`, which calls :func:`serve`.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

# The npm packages Solara's page loads through its CDN proxy (solara 1.64 with ipyvue/ipyvuetify 1,
# i.e. Vue 2, and ipywidgets 8). scripts/dashboard-assets.sh fetches exactly these; keep the two in step.
CDN_PACKAGES = (
    "@widgetti/solara-vuetify-app@10.1.1",
    "requirejs@2.3.6",
    "font-awesome@4.5.0",
    "@widgetti/vue-grid-layout@2.3.13-alpha.2",
)


def asset_cache_dir() -> Path:
    """Where Solara's server looks for CDN assets (``SOLARA_ASSETS_PROXY_CACHE_DIR`` or the venv's share/)."""
    configured = os.environ.get("SOLARA_ASSETS_PROXY_CACHE_DIR")
    return Path(configured) if configured else Path(sys.prefix) / "share" / "solara" / "cdn"


def missing_assets(cache: Path | None = None) -> list[str]:
    """The CDN packages not (completely) in the asset cache."""
    cache = asset_cache_dir() if cache is None else cache
    return [name for name in CDN_PACKAGES if not (cache / name / "package.json").is_file()]


def server_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the Solara server: assets from the local cache, no telemetry, no phoning home."""
    env = dict(os.environ if base is None else base)
    env.setdefault("SOLARA_ASSETS_PROXY", "True")
    env["SOLARA_TELEMETRY_MIXPANEL_ENABLE"] = "False"
    # Solara's advice for pages embedded in https iframes; this server is plain http by design.
    env.setdefault("PYTHONWARNINGS", "ignore:Cookies with samesite=none require https:UserWarning")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def server_command(host: str, port: int) -> list[str]:
    """The command line that runs the dashboard's Solara server."""
    return [
        sys.executable,
        "-m",
        "solara",
        "run",
        "cloudwar.dashboard.app",
        "--host",
        host,
        "--port",
        str(port),
        "--production",
        "--no-open",
        "--no-check-version",
        "--log-level",
        "warning",
    ]


def check_port_free(host: str, port: int) -> None:
    """Raise UsageError if ``host:port`` cannot be bound (in use, or not an address of this machine)."""
    from cloudwar.errors import UsageError as CliError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise CliError(f"--host {host}: {err.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise CliError(f"port {port} on {host} is in use (choose another with --port)") from None
            raise CliError(f"cannot listen on {host}:{port}: {err.strerror}") from None


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Check, then replace this process with the dashboard's server on ``host:port`` (does not return)."""
    from importlib.util import find_spec

    from cloudwar.errors import UsageError as CliError

    absent = [name for name in ("solara", "altair") if find_spec(name) is None]
    if absent:
        raise CliError(f"the dashboard needs {' and '.join(absent)}: pip install -e '.[dashboard]'")
    check_port_free(host, port)
    missing = missing_assets()
    if missing:
        print(
            f"cloudwar: warning: dashboard assets not cached ({', '.join(missing)}); the page needs internet "
            "to load them. Run scripts/dashboard-assets.sh to work offline.",
            file=sys.stderr,
        )
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    print(f"cloudwar: dashboard at {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    command = server_command(host, port)
    os.execve(command[0], command, server_environment())
    return 0  # not reached
