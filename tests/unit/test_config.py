"""Settings resolution: keyword, then environment variable, then default (DESIGN.md, "Configuration")."""

from __future__ import annotations

import pytest

from wskit import UsageError
from wskit.config import OPTIONS, ConfigError, Settings, load_settings

#: The environment variables API.md fixes ("Guards"); each must be a known option.
API_ENV_VARS = [
    "HOST",
    "PORT",
    "WORKERS",
    "REDIS_URL",
    "JWT_SECRET",
    "ALLOWED_ORIGINS",
    "MAX_CONNECTIONS_PER_IP",
    "MESSAGE_RATE_LIMIT",
    "AUTH_TIMEOUT_MS",
    "IDLE_TIMEOUT_MS",
    "MAX_PAYLOAD_BYTES",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
]


def test_defaults_without_env_or_keywords() -> None:
    """With nothing set, every option has its documented default."""
    settings = load_settings({}, env={})
    assert settings == Settings()
    assert (settings.host, settings.port, settings.max_payload_bytes, settings.log_level) == (
        "127.0.0.1",
        8000,
        1024 * 1024,
        "INFO",
    )


def test_option_defaults_match_settings_defaults() -> None:
    """Each option's default equals the Settings field default (one source of truth)."""
    defaults = Settings()
    for option in OPTIONS:
        assert getattr(defaults, option.name) == option.default, option.name


def test_env_is_used() -> None:
    """An environment variable sets its option (parsed to the option's type)."""
    settings = load_settings({}, env={"PORT": "9001", "HOST": "0.0.0.0", "LOG_LEVEL": "debug"})
    assert (settings.port, settings.host, settings.log_level) == (9001, "0.0.0.0", "DEBUG")


def test_keyword_wins_over_env() -> None:
    """A keyword argument overrides the environment variable."""
    assert load_settings({"port": 7000}, env={"PORT": "9001"}).port == 7000


def test_keyword_none_falls_back_to_env() -> None:
    """A keyword given as None means "not given": the environment variable applies."""
    assert load_settings({"port": None}, env={"PORT": "9001"}).port == 9001


def test_empty_env_value_means_default() -> None:
    """An empty environment variable is treated as unset."""
    assert load_settings({}, env={"PORT": "  "}).port == 8000


@pytest.mark.parametrize(
    ("var", "value"),
    [("PORT", "eighty"), ("PORT", "70000"), ("MAX_PAYLOAD_BYTES", "0"), ("LOG_LEVEL", "loud"), ("PING_INTERVAL", "-1")],
)
def test_bad_env_value_names_the_variable(var: str, value: str) -> None:
    """A bad environment value raises ConfigError whose message names the variable and the value."""
    with pytest.raises(ConfigError) as info:
        load_settings({}, env={var: value})
    assert var in str(info.value)
    assert value in str(info.value)


def test_bad_keyword_value_names_the_keyword() -> None:
    """A bad keyword value raises ConfigError naming the keyword."""
    with pytest.raises(ConfigError, match="port"):
        load_settings({"port": -1}, env={})


def test_bad_env_is_ignored_when_keyword_given() -> None:
    """A keyword wins even over a bad environment value (which is then not parsed)."""
    assert load_settings({"port": 7000}, env={"PORT": "eighty"}).port == 7000


def test_unknown_keyword_is_refused() -> None:
    """An unknown setting raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="prot"):
        load_settings({"prot": 1}, env={})


def test_config_error_is_usage_error_and_value_error() -> None:
    """ConfigError is a UsageError and a ValueError."""
    assert issubclass(ConfigError, UsageError)
    assert issubclass(ConfigError, ValueError)


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``env``, os.environ is read."""
    monkeypatch.setenv("PORT", "9123")
    assert load_settings().port == 9123


def test_every_api_environment_variable_is_an_option() -> None:
    """Every environment variable API.md fixes has an option (so it is validated at start)."""
    known = {option.env for option in OPTIONS} | {alias for option in OPTIONS for alias in option.aliases}
    assert [var for var in API_ENV_VARS if var not in known] == []
    assert "CORS_ORIGIN" in known


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "infinity"])
@pytest.mark.parametrize("var", ["PING_INTERVAL", "JWT_LEEWAY_S"])
def test_non_finite_seconds_are_refused(var: str, value: str) -> None:
    """float() accepts nan and inf; a setting in seconds must not (a NaN timer never fires)."""
    with pytest.raises(ConfigError) as info:
        load_settings({}, env={var: value})
    assert var in str(info.value)
    assert "finite" in str(info.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2.5])
def test_non_whole_or_non_finite_keywords_are_refused(value: float) -> None:
    """An integer setting given a float keyword that is not a whole number fails, naming it
    (int() would truncate 2.5 and raise OverflowError for inf)."""
    with pytest.raises(ConfigError, match="max_payload_bytes"):
        load_settings({"max_payload_bytes": value}, env={})
    with pytest.raises(ConfigError, match="ping_interval"):
        load_settings({"ping_interval": float("nan")}, env={})


def test_every_float_option_refuses_nan() -> None:
    """No option parses NaN to a value: each one fails at start naming its variable."""
    for option in OPTIONS:
        try:
            load_settings({}, env={option.env: "nan"})
        except ConfigError as exc:
            assert option.env in str(exc)
        else:  # a text option may take the word "nan"; nothing may hold a float NaN
            value = getattr(load_settings({}, env={option.env: "nan"}), option.name)
            assert not isinstance(value, float), option.env


def test_jwt_leeway_setting() -> None:
    """JWT_LEEWAY_S (keyword jwt_leeway_s) sets the clock-skew allowance; the keyword wins."""
    assert load_settings({}, env={}).jwt_leeway_s == 30.0
    assert load_settings({}, env={"JWT_LEEWAY_S": "5"}).jwt_leeway_s == 5.0
    assert load_settings({"jwt_leeway_s": 0}, env={"JWT_LEEWAY_S": "5"}).jwt_leeway_s == 0.0
    with pytest.raises(ConfigError, match="JWT_LEEWAY_S"):
        load_settings({}, env={"JWT_LEEWAY_S": "-1"})


def test_ws_path_setting() -> None:
    """WS_PATH (keyword path): a URL path; PATH itself is never read (it is the shell's)."""
    assert load_settings({}, env={"PATH": "/usr/bin:/bin"}).path is None
    assert load_settings({}, env={"WS_PATH": "/ws"}).path == "/ws"
    assert load_settings({"path": "/live"}, env={"WS_PATH": "/ws"}).path == "/live"
    with pytest.raises(ConfigError, match="WS_PATH"):
        load_settings({}, env={"WS_PATH": "ws"})


@pytest.mark.parametrize(("value", "code"), [("1001", 1001), ("1012", 1012)])
def test_shutdown_close_code_accepts_1001_and_1012(value: str, code: int) -> None:
    """SHUTDOWN_CLOSE_CODE is 1001 by default, or 1012 (service restart)."""
    assert load_settings({}, env={}).shutdown_close_code == 1001
    assert load_settings({}, env={"SHUTDOWN_CLOSE_CODE": value}).shutdown_close_code == code


@pytest.mark.parametrize("value", ["1000", "1008", "4000", "restart"])
def test_shutdown_close_code_refuses_others(value: str) -> None:
    """Any other close code fails at start, naming SHUTDOWN_CLOSE_CODE."""
    with pytest.raises(ConfigError, match="SHUTDOWN_CLOSE_CODE"):
        load_settings({}, env={"SHUTDOWN_CLOSE_CODE": value})


def test_explicit_settings_names_keywords_and_env_only() -> None:
    """explicit_settings tells a given setting from a default (for defaults that sit between)."""
    from wskit.config import explicit_settings

    given = explicit_settings({"backpressure": "drop-new", "port": None}, {"SEND_QUEUE_BYTES": "100", "PORT": " "})
    assert given == {"backpressure", "send_queue_bytes"}


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"PORT": "abc"}, "PORT='abc' is invalid: must be a whole number"),
        ({"MAX_PAYLOAD_BYTES": "1MB"}, "MAX_PAYLOAD_BYTES='1MB' is invalid: must be a whole number"),
        ({"PING_INTERVAL": "20s"}, "PING_INTERVAL='20s' is invalid: must be a number of seconds"),
    ],
)
def test_a_value_that_is_not_a_number_says_what_is_accepted(env: dict[str, str], said: str) -> None:
    """Not Python's "invalid literal for int() with base 10": what the setting takes."""
    with pytest.raises(ConfigError) as raised:
        load_settings(env=env)
    assert said in str(raised.value) and "literal" not in str(raised.value)
