"""Layered configuration: substitution, secrets, overrides and refusals name the key."""

from __future__ import annotations

import pytest

from services.runtime.config import ConfigError, load_settings, substitute

PRODUCTION_AUTH = {
    "AUTH_JWKS_FILE": "/run/secrets/jwks.json",
    "AUTH_ISSUER": "https://login.plant.example",
}


def test_development_defaults_use_the_embedded_database():
    settings = load_settings("scheduling", environ={})
    assert settings.environment == "development"
    assert settings.server.port == 50051
    assert settings.database_url == "sqlite:///var/scheduling.db"
    assert settings.redis.url == ""


def test_each_service_gets_its_own_port():
    ports = {
        s: load_settings(s, environ={}).server.port
        for s in ("scheduling", "quality", "maintenance")
    }
    assert len(set(ports.values())) == 3


def test_substitution_with_and_without_default():
    env = {"HOST": "db.internal"}
    assert substitute("pg://${HOST}:${PORT:-5432}/x", env) == "pg://db.internal:5432/x"
    assert substitute({"a": ["${HOST}", 3]}, env) == {"a": ["db.internal", 3]}


def test_empty_variable_falls_back_to_default():
    assert substitute("${PORT:-5432}", {"PORT": ""}) == "5432"


def test_missing_variable_names_key_and_variable():
    with pytest.raises(ConfigError, match=r"database\.url: environment variable DATABASE_URL"):
        substitute({"database": {"url": "${DATABASE_URL}"}}, {})


def test_secret_read_from_file(tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text("s3cr3t-Value\n")
    assert substitute("${DB_PASSWORD}", {"DB_PASSWORD_FILE": str(secret)}) == "s3cr3t-Value"


def test_unreadable_secret_file_is_named():
    with pytest.raises(ConfigError, match="DB_PASSWORD_FILE"):
        substitute("${DB_PASSWORD}", {"DB_PASSWORD_FILE": "/nonexistent/secret"})


def test_environment_variables_override_files():
    settings = load_settings(
        "quality",
        environ={"MFG_SERVER__PORT": "6000", "MFG_LOGGING__LEVEL": "DEBUG", "LOG_LEVEL": "ERROR"},
    )
    assert settings.server.port == 6000
    assert settings.logging.level == "DEBUG"


def test_bad_value_names_the_key():
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings("quality", environ={"MFG_SERVER__PORT": "not-a-port"})


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigError, match=r"server\.prot"):
        load_settings("quality", environ={"MFG_SERVER__PROT": "1"})


def test_missing_required_key_names_it(tmp_path):
    (tmp_path / "base.yaml").write_text("defaults:\n  server: {host: 127.0.0.1}\n")
    (tmp_path / "development.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match=r"server\.port: Field required"):
        load_settings("quality", environ={}, config_dir=tmp_path)


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_settings("quality", environ={"APP_ENV": "prod"})


def test_staging_requires_database_url():
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings("scheduling", environ={"APP_ENV": "staging"})


@pytest.mark.parametrize("password", ["", "postgres", "changeme"])
def test_production_refuses_default_passwords(password):
    url = f"postgresql://app:{password}@db:5432/mfg" if password else "postgresql://app@db:5432/mfg"
    with pytest.raises(ConfigError, match=r"database\.url: production refuses"):
        load_settings(
            "scheduling",
            environ={
                **PRODUCTION_AUTH,
                "APP_ENV": "production",
                "DATABASE_URL": url,
                "REDIS_URL": "redis://:Str0ng-pw@r:6379/0",
            },
        )


def test_production_refuses_default_redis_password():
    with pytest.raises(ConfigError, match=r"redis\.url: production refuses"):
        load_settings(
            "scheduling",
            environ={
                **PRODUCTION_AUTH,
                "APP_ENV": "production",
                "DATABASE_URL": "postgresql://app:Str0ng-pw@db/mfg",
                "REDIS_URL": "redis://db:6379/0",
            },
        )


def test_production_accepts_real_secrets_from_files(tmp_path):
    secret = tmp_path / "pg"
    secret.write_text("Xk2-very-long-generated")
    (tmp_path / "base.yaml").write_text(
        "defaults:\n  server: {port: 1}\n  database: {url: 'postgresql://app:${PG_PASSWORD}@db/mfg'}\n"
        "  auth: {enabled: true, api_keys_file: /run/secrets/api-keys}\n"
    )
    (tmp_path / "production.yaml").write_text("{}\n")
    settings = load_settings(
        "scheduling",
        environ={"APP_ENV": "production", "PG_PASSWORD_FILE": str(secret)},
        config_dir=tmp_path,
    )
    assert settings.database.url == "postgresql://app:Xk2-very-long-generated@db/mfg"
    assert settings.environment == "production"


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    (tmp_path / "base.yaml").write_text("defaults: [unclosed\n")
    with pytest.raises(ConfigError, match=r"base\.yaml"):
        load_settings("quality", environ={}, config_dir=tmp_path)


def test_production_refuses_to_run_without_authentication():
    with pytest.raises(ConfigError, match=r"auth\.enabled: production requires"):
        load_settings(
            "scheduling",
            environ={
                "APP_ENV": "production",
                "AUTH_ENABLED": "false",
                "DATABASE_URL": "postgresql://app:Str0ng-pw@db/mfg",
                "REDIS_URL": "redis://:Str0ng-pw@db:6379/0",
            },
        )


def test_enabled_auth_needs_keys_to_check_against():
    with pytest.raises(ConfigError, match=r"auth\.jwks_file or auth\.api_keys_file"):
        load_settings("scheduling", environ={"AUTH_ENABLED": "true"})
