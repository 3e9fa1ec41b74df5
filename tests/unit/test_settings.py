"""Which settings source wins: arguments > environment > secret files > defaults."""

from __future__ import annotations

from vllmbench.settings import load_settings


def test_defaults_make_the_embedded_stack_work(monkeypatch, tmp_path):
    monkeypatch.setenv("VLLMBENCH_SECRETS_DIR", str(tmp_path / "none"))
    for name in ("MONGO_URL", "VLLMBENCH_API_TOKEN", "GITHUB_TOKEN", "K_SINK"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.mongo_url.get_secret_value() == "mongodb://127.0.0.1:27017/"
    assert settings.api_token is None
    assert settings.database_for("results") == "benchmark_results"
    assert settings.database_for("sync") == "benchmark_manager"


def test_precedence(monkeypatch, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "vllmbench_api_token").write_text("from-file")
    (secrets / "github_token").write_text("gh-from-file")
    monkeypatch.setenv("VLLMBENCH_SECRETS_DIR", str(secrets))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("VLLMBENCH_API_TOKEN", raising=False)
    assert load_settings().api_token.get_secret_value() == "from-file"
    assert load_settings().github_token.get_secret_value() == "gh-from-file"
    monkeypatch.setenv("VLLMBENCH_API_TOKEN", "from-env")
    assert load_settings().api_token.get_secret_value() == "from-env"
    assert load_settings(api_token="from-argument").api_token.get_secret_value() == "from-argument"


def test_knative_sink_is_the_broker(monkeypatch):
    monkeypatch.setenv("K_SINK", "http://broker-ingress.knative-eventing.svc/vllmbench/default")
    assert load_settings().broker_url.endswith("/vllmbench/default")


def test_secrets_are_hidden_in_repr_and_listed_for_redaction(monkeypatch):
    monkeypatch.setenv("MONGO_URL", "mongodb://bench:s3cret-pw@db:27017/")
    settings = load_settings(api_token="tok-12345")
    assert "s3cret-pw" not in repr(settings) and "tok-12345" not in repr(settings)
    assert {"s3cret-pw", "tok-12345"} <= set(settings.secret_values())


def test_values_are_converted_and_a_wrong_one_is_refused_naming_its_variable(monkeypatch):
    import pytest

    from vllmbench.settings import SettingsError

    monkeypatch.setenv("VLLMBENCH_MONGO_TIMEOUT_MS", "2500")
    monkeypatch.setenv("VLLMBENCH_EVENTS_REQUIRE_TOKEN", "false")
    monkeypatch.setenv("vllmbench_body_timeout_s", "1.5")  # variable names in any case
    settings = load_settings()
    assert (settings.mongo_timeout_ms, settings.events_require_token, settings.body_timeout_s) == (2500, False, 1.5)
    for variable, value, words in [("VLLMBENCH_MONGO_TIMEOUT_MS", "50", "at least 100"),
                                   ("VLLMBENCH_MONGO_TIMEOUT_MS", "soon", "an integer"),
                                   ("VLLMBENCH_EVENTS_REQUIRE_TOKEN", "maybe", "true or false"),
                                   ("VLLMBENCH_RUNTIME", "cloud", "auto|kube|local")]:
        monkeypatch.setenv(variable, value)
        with pytest.raises(SettingsError, match=words) as refused:
            load_settings()
        assert variable in str(refused.value)
        monkeypatch.delenv(variable)


def test_a_mongodb_user_apart_from_the_url_is_a_secret(monkeypatch, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "mongo_password").write_text("pw-from-file\n")
    monkeypatch.setenv("VLLMBENCH_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("MONGO_USERNAME", "results-user")
    settings = load_settings()
    assert settings.mongo_username == "results-user"
    assert settings.mongo_password.get_secret_value() == "pw-from-file"
    assert "pw-from-file" not in repr(settings) and "pw-from-file" in settings.secret_values()


def test_settings_are_read_only_and_unknown_arguments_are_refused():
    import pytest

    settings = load_settings()
    with pytest.raises(AttributeError):
        settings.api_token = None  # type: ignore[misc]
    with pytest.raises(TypeError, match="no_such_setting"):
        load_settings(no_such_setting=1)
    # an argument may use the field's name or any of its variable names
    assert load_settings(workload_namespaces="a,b").workload_namespaces == ["a", "b"]
    assert load_settings(VLLMBENCH_MAX_BODY_BYTES=2048).max_body_bytes == 2048
