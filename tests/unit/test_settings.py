"""Settings are read once from the environment, typed, and fail fast naming the variable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bootstrap import ConfigError, Settings, _RedactSecrets


def test_defaults_are_the_embedded_setup(tmp_path: Path) -> None:
    settings = Settings.from_env({"INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'crm.db'}"
    assert settings.redis_url is None
    assert settings.public_base_url == "http://localhost:5000"
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.ms_authority_host == "https://login.microsoftonline.com"
    assert settings.google_calendar_base_url == "https://www.googleapis.com/calendar/v3"
    assert settings.max_request_bytes == 1024 * 1024


def test_api_audience_defaults_to_the_app_id_uri(tmp_path: Path) -> None:
    env = {"INSTANCE_PATH": str(tmp_path), "PUBLIC_BASE_URL": "https://crm.example.com",
           "MS_TENANT_ID": "t", "MS_CLIENT_ID": "c1d2", "MS_CLIENT_SECRET": "s"}  # fmt: skip
    assert Settings.from_env(env).ms_api_audience == "api://crm.example.com/c1d2"
    assert Settings.from_env({"INSTANCE_PATH": str(tmp_path)}).ms_api_audience is None


def test_secret_key_is_generated_once_into_the_instance_folder(tmp_path: Path) -> None:
    first = Settings.from_env({"INSTANCE_PATH": str(tmp_path)}).secret_key
    second = Settings.from_env({"INSTANCE_PATH": str(tmp_path)}).secret_key
    assert first == second
    assert len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_every_contract_variable_is_read(tmp_path: Path) -> None:
    key_file = tmp_path / "sa.json"
    key_file.write_text("{}")
    env = {
        "INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": "postgresql://crm@db.internal/crm",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "PUBLIC_BASE_URL": "https://crm.example.com/",
        "MS_TENANT_ID": "tenant",
        "MS_CLIENT_ID": "client",
        "MS_CLIENT_SECRET": "secret",
        "MS_AUTHORITY_HOST": "https://login.test/",
        "GRAPH_BASE_URL": "https://graph.test/v1.0/",
        "MS_API_AUDIENCE": "api://crm.example.com/client",
        "ADDIN_ID": "0f3b2e8a-55e4-4b4e-9b3e-1b2c3d4e5f60",
        "GOOGLE_SERVICE_ACCOUNT_FILE": str(key_file),
        "GOOGLE_ADMIN_EMAIL": "admin@example.com",
        "GOOGLE_CALENDAR_BASE_URL": "https://calendar.test/v3",
        "GOOGLE_GMAIL_BASE_URL": "https://gmail.test/v1",
        "GOOGLE_CERTS_URL": "https://certs.test/",
        "GOOGLE_ADDON_SERVICE_ACCOUNT": "service-1@gcp-sa-gsuiteaddons.iam.gserviceaccount.com",
        "GOOGLE_PUBSUB_AUDIENCE": "https://crm.example.com/webhooks/gmail",
        "GOOGLE_PUBSUB_SERVICE_ACCOUNT": "push@project.iam.gserviceaccount.com",
        "SECRET_KEY": "s" * 40,
    }
    s = Settings.from_env(env)
    assert s.database_url == "postgresql+psycopg://crm@db.internal/crm"
    assert (s.redis_url, s.public_base_url) == (
        "redis://127.0.0.1:6379/0",
        "https://crm.example.com",
    )
    assert (s.ms_tenant_id, s.ms_client_id, s.ms_client_secret) == ("tenant", "client", "secret")
    assert (s.ms_authority_host, s.graph_base_url) == (
        "https://login.test",
        "https://graph.test/v1.0",
    )
    assert s.ms_api_audience == "api://crm.example.com/client"
    assert s.addin_id == "0f3b2e8a-55e4-4b4e-9b3e-1b2c3d4e5f60"
    assert s.google_service_account_file == key_file
    assert (s.google_calendar_base_url, s.google_gmail_base_url) == (
        "https://calendar.test/v3",
        "https://gmail.test/v1",
    )
    assert s.google_certs_url == "https://certs.test/"
    assert s.google_addon_service_account.startswith("service-1@")  # type: ignore[union-attr]
    assert s.google_pubsub_audience == "https://crm.example.com/webhooks/gmail"
    assert s.google_pubsub_service_account == "push@project.iam.gserviceaccount.com"
    assert s.secret_key == "s" * 40


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MS_CLIENT_ID": "c", "MS_TENANT_ID": "t"}, "MS_CLIENT_SECRET"),
        ({"MS_CLIENT_SECRET": "s"}, "MS_TENANT_ID"),
        ({"APP_ENV": "production", "PUBLIC_BASE_URL": "https://x.example"}, "SECRET_KEY"),
        ({"APP_ENV": "production", "SECRET_KEY": "k"}, "PUBLIC_BASE_URL"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"PUBLIC_BASE_URL": "not a url"}, "PUBLIC_BASE_URL"),
        ({"GRAPH_BASE_URL": "ftp://graph"}, "GRAPH_BASE_URL"),
        ({"MAX_REQUEST_BYTES": "lots"}, "MAX_REQUEST_BYTES"),
        ({"GOOGLE_SERVICE_ACCOUNT_FILE": "/nonexistent/key.json"}, "GOOGLE_SERVICE_ACCOUNT_FILE"),
        ({"ADDIN_ID": "my-addin"}, "ADDIN_ID"),
        ({"GOOGLE_SERVICE_ACCOUNT_FILE": __file__}, "GOOGLE_ADMIN_EMAIL"),
        ({"GRAPH_MAX_CONCURRENCY": "0"}, "GRAPH_MAX_CONCURRENCY"),
        ({"SYNC_WINDOW_FUTURE_DAYS": "two years"}, "SYNC_WINDOW_FUTURE_DAYS"),
    ],
)
def test_bad_or_missing_settings_name_the_variable(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({"INSTANCE_PATH": str(tmp_path), **env})


def test_secrets_are_not_in_the_repr(tmp_path: Path) -> None:
    s = Settings.from_env(
        {"INSTANCE_PATH": str(tmp_path), "MS_TENANT_ID": "t", "MS_CLIENT_ID": "c",
         "MS_CLIENT_SECRET": "very-secret-value", "SECRET_KEY": "another-secret-value"}
    )  # fmt: skip
    assert "very-secret-value" not in repr(s)
    assert "another-secret-value" not in repr(s)


def test_log_filter_redacts_tokens() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "auth %s and %s", ("Bearer eyJabc.def.ghi",
        "mtc_0123456789abcdef_SuperSecret-Value"), None,
    )  # fmt: skip
    _RedactSecrets().filter(record)
    message = record.getMessage()
    assert "eyJabc" not in message
    assert "SuperSecret" not in message
    assert message == "auth Bearer [redacted] and mtc_0123456789abcdef_[redacted]"
