"""Access and configuration of the dashboard: production settings and the optional sign-in.

The sign-in tests run the real pages with AppTest, seeding ``at.secrets`` (an ``[auth]``
section as in ``.streamlit/secrets.toml``) and ``at.user`` (what Streamlit's ``st.user`` holds
after an OpenID Connect sign-in). ``st.login`` itself redirects the browser to the provider,
which AppTest cannot follow: the test records the call instead.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import streamlit as st
from app_support import run as _run
from app_support import save_copy
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from termdeposit.core import config
from termdeposit.modeling import registry

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONFIG_TOML = PROJECT_ROOT / ".streamlit" / "config.toml"
HOME = str(PROJECT_ROOT / "streamlit_app.py")
MODELS = "pages/4_Models.py"
CALL_LIST = "pages/3_Call_list.py"
TIMEOUT = 180

CLIENT_SECRET = "client-secret-4f1d9c0e-never-shown"
COOKIE_SECRET = "cookie-secret-8a2b7e55-never-shown"
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": COOKIE_SECRET,
    "client_id": "termdeposit-dashboard",
    "client_secret": CLIENT_SECRET,
    "server_metadata_url": "https://login.example.com/.well-known/openid-configuration",
}
ANA = {"is_logged_in": True, "name": "Ana Lopes", "email": "ana.lopes@bank.example"}


def _all_text(at: AppTest) -> str:
    """Every text the page shows (main area and sidebar), widget labels included."""
    parts = [
        str(getattr(node, attr))
        for kind in (
            "title",
            "subheader",
            "markdown",
            "caption",
            "info",
            "warning",
            "error",
            "success",
            "button",
            "text_input",
            "number_input",
            "metric",
        )
        for node in at.get(kind)
        for attr in ("value", "label")
        if getattr(node, attr, None) is not None
    ]
    return "\n".join(parts)


def _home(secrets: dict | None = None, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    if secrets is not None:
        at.secrets = secrets
    if user is not None:
        at.user = user
    return at


def test_production_settings_in_config_toml(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # Streamlit reads .streamlit/config.toml from there
    settings = tomllib.loads(CONFIG_TOML.read_text())
    assert settings["server"]["maxUploadSize"] == config.MAX_UPLOAD_MB
    assert settings["server"]["enableXsrfProtection"] is True
    assert settings["client"]["showErrorDetails"] == "none"

    # Streamlit reads the same file and knows every option in it (a misspelt key is ignored
    # by Streamlit, so the setting would silently not apply).
    options = st_config.get_config_options(force_reparse=True)
    for section, values in settings.items():
        for key in values:
            name = f"{section}.{key}"
            assert name in options, f"{name} is not a Streamlit option"
            assert Path(options[name].where_defined) == CONFIG_TOML, name
    assert st_config.get_option("server.maxUploadSize") == config.MAX_UPLOAD_MB
    assert st_config.get_option("server.enableXsrfProtection") is True
    assert st_config.get_option("client.showErrorDetails") == "none"
    # This machine only by default (Docker passes 0.0.0.0 inside its container); no watcher.
    assert st_config.get_option("server.address") == "127.0.0.1"
    assert st_config.get_option("server.fileWatcherType") == "none"


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    found.add("::" if set(address) == {"0"} else address)
    return found


@pytest.mark.slow
def test_the_dashboard_listens_on_this_machine_only(trained_version, tmp_path):
    """``streamlit run streamlit_app.py``, as ``make dashboard`` runs it, listens on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port"]
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [*command, str(port)], cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "streamlit.log").read_text()
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    assert answer.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the dashboard did not start within 90 s"
                time.sleep(0.5)
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_without_secrets_the_dashboard_is_open_and_says_nothing_about_them(
    trained_version, tmp_path
):
    with patch_config_options({"secrets.files": [str(tmp_path / "missing" / "secrets.toml")]}):
        at = _run(_home())
    assert "Where to start" in [h.value for h in at.subheader]
    assert not at.error and not at.warning
    text = _all_text(at)
    assert "Sign in" not in text and "secrets" not in text.lower()


def test_secrets_without_auth_leave_the_dashboard_open(trained_version):
    at = _run(_home(secrets={"other_service": {"token": "x"}}))
    assert "Where to start" in [h.value for h in at.subheader]
    assert not [b for b in at.button if b.label.startswith("Sign in")]


def test_unreadable_secrets_file_does_not_open_the_dashboard(trained_version, tmp_path):
    broken = tmp_path / "secrets.toml"
    broken.write_text('[auth\nclient_secret = "x"\n')
    with patch_config_options({"secrets.files": [str(broken)]}):
        at = _run(_home())
    assert "could not be read" in at.error[0].value
    assert "Where to start" not in [h.value for h in at.subheader]


@pytest.mark.parametrize("page", [None, MODELS, CALL_LIST])
def test_with_auth_every_page_asks_to_sign_in_first(page, trained_version, monkeypatch):
    calls = []
    monkeypatch.setattr(st, "login", lambda provider=None: calls.append(provider))
    at = _run(_home(secrets={"auth": AUTH}))
    if page is not None:
        at.switch_page(page)
        _run(at)
    assert [b.label for b in at.button] == ["Sign in"]
    assert "sign in with your company account" in at.info[0].value
    # Nothing of the page itself: no sidebar settings, no model, no page title or content.
    assert not at.number_input and not at.text_input and not at.metric and not at.dataframe
    assert [t.value for t in at.title] == ["termdeposit"]
    text = _all_text(at)
    assert "Production model" not in text and "Where to start" not in text
    assert CLIENT_SECRET not in text and COOKIE_SECRET not in text

    at.button(key="sign_in_default").click()
    _run(at)
    assert calls == [None]


def test_named_providers_get_one_button_each(trained_version, monkeypatch):
    calls = []
    monkeypatch.setattr(st, "login", lambda provider=None: calls.append(provider))
    provider = {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}
    secrets = {
        "auth": {
            "redirect_uri": AUTH["redirect_uri"],
            "cookie_secret": COOKIE_SECRET,
            "google": provider,
            "okta": provider,
        }
    }
    at = _run(_home(secrets=secrets))
    assert [b.label for b in at.button] == ["Sign in with google", "Sign in with okta"]
    at.button(key="sign_in_okta").click()
    _run(at)
    assert calls == ["okta"]


def test_signed_in_user_is_shown_recorded_in_the_audit_log_and_can_sign_out(
    models_copy, production_model
):
    second = save_copy(production_model)
    first = registry.production_version()

    at = _run(_home(secrets={"auth": AUTH}, user=dict(ANA)))
    assert "Where to start" in [h.value for h in at.subheader]
    assert "Signed in as **Ana Lopes (ana.lopes@bank.example)**" in [
        c.value for c in at.sidebar.caption
    ]

    at.switch_page(MODELS)
    _run(at)
    assert not [t for t in at.text_input if t.key == "models_user"], "no name to type in"
    assert any("as **ana.lopes@bank.example** (signed in)" in c.value for c in at.caption)
    at.text_input(key="models_reason").input("checked by the signed-in user")
    at.selectbox(key="models_target").select(second)
    at.button(key="models_promote").click()
    _run(at)
    assert registry.production_version() == second
    entry = registry.audit_log()[-1]
    assert entry["user"] == "ana.lopes@bank.example" and entry["previous"] == first

    at.button(key="sign_out").click()
    _run(at)
    assert at.user.get("is_logged_in") is False
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.dataframe
