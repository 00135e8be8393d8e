//! Each layer's precedence and each kind of error, with real files in a figment `Jail` (a
//! temporary current directory; environment variables set there are restored afterwards).

// Jail's closures must return `figment::Result`, whose error is large; that is figment's choice
// and costs nothing in a test.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Jail;

use super::*;

/// The jail's files, and this process's `IMBOX_` variables (the jail sets and restores them; an
/// `IMBOX_` variable in the shell that runs the tests would take part too).
fn sources(jail: &Jail) -> Sources {
    Sources { etc_file: Some(jail.directory().join("etc-imbox.toml")), env: env_vars() }
}

/// A data directory inside the jail, so no test reads a real `/var/lib/imbox/settings.toml`.
fn data_dir(jail: &Jail) -> figment::Result<PathBuf> {
    jail.create_dir("data")?;
    Ok(jail.directory().join("data"))
}

fn toml_path(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

/// `/etc/imbox/imbox.toml` stand-in that puts data_dir in the jail, plus `extra` lines.
fn write_etc(jail: &Jail, extra: &str) -> figment::Result<PathBuf> {
    let data = data_dir(jail)?;
    jail.create_file("etc-imbox.toml", &format!("data_dir = {}\n{extra}", toml_path(&data)))?;
    Ok(data)
}

fn load(jail: &Jail, overrides: &Overrides) -> figment::Result<Config> {
    Config::load_from(overrides, &sources(jail)).map_err(|e| figment::Error::from(e.to_string()))
}

fn load_err(jail: &Jail, overrides: &Overrides) -> figment::Result<ConfigError> {
    match Config::load_from(overrides, &sources(jail)) {
        Ok(config) => Err(format!("expected an error, loaded {config:?}").into()),
        Err(e) => Ok(e),
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn the_defaults_are_complete_and_as_documented() {
    // Without serde defaults, extracting the embedded file alone proves it has every key.
    let config: Config = match toml::from_str(DEFAULT_TOML) {
        Ok(config) => config,
        Err(e) => panic!("default.toml does not describe a whole Config: {e}"),
    };
    assert_eq!(config.data_dir, Path::new("/var/lib/imbox"));
    assert_eq!(config.box_name, "imbox");
    assert_eq!(config.http.listen, [addr("127.0.0.1:8080")]);
    assert_eq!(config.log.level, "info");
    let l = &config.limits;
    assert_eq!(
        [l.max_connections, l.max_frame_bytes, l.max_text_bytes, l.max_sync_page, l.max_history_page],
        [100_000, 65_536, 16_384, 500, 200]
    );
    assert_eq!(
        [l.sends_per_second, l.send_burst, l.max_group_members, l.login_attempts_per_minute],
        [50, 200, 1000, 10]
    );
    assert_eq!([l.max_inflight_requests, l.session_queue], [64, 256]);
    assert_eq!(l.handshake_timeout_ms, 10_000);
    let s = &config.storage;
    assert_eq!([s.commit_batch_max, s.write_queue, s.cache_mib], [2048, 8192, 64]);
}

#[test]
fn defaults_pass_validation() {
    Jail::expect_with(|jail| {
        let data = data_dir(jail)?;
        let overrides = Overrides { data_dir: Some(data.clone()), ..Overrides::default() };
        let config = Config::load_from(&overrides, &Sources::none()).map_err(|e| e.to_string())?;
        assert_eq!(config.data_dir, data);
        assert_eq!(config.database_path(), data.join("imbox.redb"));
        assert_eq!(config.control_socket_path(), data.join("control.sock"));
        assert_eq!(config.settings_path(), data.join("settings.toml"));
        Ok(())
    });
}

#[test]
fn the_etc_file_overrides_the_defaults() {
    Jail::expect_with(|jail| {
        write_etc(jail, "box_name = \"attic\"\n[limits]\nmax_connections = 500\n")?;
        let config = load(jail, &Overrides::default())?;
        assert_eq!(config.box_name, "attic");
        assert_eq!(config.limits.max_connections, 500);
        assert_eq!(config.limits.max_frame_bytes, 65_536, "keys not in the file keep their default");
        Ok(())
    });
}

#[test]
fn config_flag_replaces_the_etc_file() {
    Jail::expect_with(|jail| {
        let data = write_etc(jail, "box_name = \"from-etc\"\n")?;
        jail.create_file(
            "other.toml",
            &format!("data_dir = {}\nbox_name = \"from-flag\"\n", toml_path(&data)),
        )?;
        let overrides = Overrides { config_file: Some("other.toml".into()), ..Overrides::default() };
        let config = load(jail, &overrides)?;
        assert_eq!(config.box_name, "from-flag");
        Ok(())
    });
}

#[test]
fn a_missing_config_file_is_an_error_but_a_missing_etc_file_is_not() {
    Jail::expect_with(|jail| {
        let overrides = Overrides { config_file: Some("nowhere.toml".into()), ..Overrides::default() };
        let error = load_err(jail, &overrides)?;
        assert!(
            matches!(&error, ConfigError::MissingConfigFile { path } if path == Path::new("nowhere.toml"))
        );
        assert_eq!(error.to_string(), "configuration file nowhere.toml (given with --config) does not exist");

        // No etc file: the defaults and flags alone are enough.
        let data = data_dir(jail)?;
        let config = load(jail, &Overrides { data_dir: Some(data), ..Overrides::default() })?;
        assert_eq!(config.box_name, "imbox");
        Ok(())
    });
}

#[test]
fn settings_override_the_etc_file() {
    Jail::expect_with(|jail| {
        write_etc(jail, "box_name = \"etc\"\n[limits]\nmax_connections = 500\nsend_burst = 7\n")?;
        jail.create_file("data/settings.toml", "box_name = \"settings\"\n[limits]\nmax_connections = 600\n")?;
        let config = load(jail, &Overrides::default())?;
        assert_eq!(config.box_name, "settings");
        assert_eq!(config.limits.max_connections, 600);
        assert_eq!(config.limits.send_burst, 7, "a key settings.toml leaves alone keeps the etc value");
        Ok(())
    });
}

#[test]
fn the_environment_overrides_settings() {
    Jail::expect_with(|jail| {
        write_etc(jail, "")?;
        jail.create_file("data/settings.toml", "[limits]\nmax_connections = 600\n[log]\nlevel = \"warn\"\n")?;
        jail.set_env("IMBOX_LIMITS__MAX_CONNECTIONS", "20000");
        jail.set_env("IMBOX_LOG__LEVEL", "debug,imboxd::store=trace");
        jail.set_env("IMBOX_BOX_NAME", "2024");
        let config = load(jail, &Overrides::default())?;
        assert_eq!(config.limits.max_connections, 20_000);
        assert_eq!(config.log.level, "debug,imboxd::store=trace");
        assert_eq!(config.box_name, "2024", "a string key takes the variable verbatim, digits included");
        Ok(())
    });
}

#[test]
fn the_environment_chooses_where_settings_are_read() {
    Jail::expect_with(|jail| {
        write_etc(jail, "")?;
        jail.create_file("data/settings.toml", "box_name = \"wrong\"\n")?;
        jail.create_dir("elsewhere")?;
        jail.create_file("elsewhere/settings.toml", "box_name = \"right\"\n")?;
        jail.set_env("IMBOX_DATA_DIR", jail.directory().join("elsewhere").display());
        let config = load(jail, &Overrides::default())?;
        assert_eq!(config.data_dir, jail.directory().join("elsewhere"));
        assert_eq!(config.box_name, "right");
        Ok(())
    });
}

#[test]
fn flags_override_the_environment() {
    Jail::expect_with(|jail| {
        write_etc(jail, "[http]\nlisten = [\"127.0.0.1:1\"]\n")?;
        jail.set_env("IMBOX_HTTP__LISTEN", "127.0.0.1:2");
        jail.set_env("IMBOX_DATA_DIR", "/somewhere/else");
        jail.create_dir("flag-data")?;
        jail.create_file("flag-data/settings.toml", "box_name = \"flagged\"\n")?;
        let overrides = Overrides {
            config_file: None,
            // Relative: resolved against the current directory, which the jail set.
            data_dir: Some("flag-data".into()),
            http_listen: vec![addr("0.0.0.0:80"), addr("[::]:80")],
        };
        let config = load(jail, &overrides)?;
        assert_eq!(config.data_dir, jail.directory().join("flag-data"));
        assert_eq!(config.box_name, "flagged", "settings.toml is read from the flag's data_dir");
        assert_eq!(config.http.listen, [addr("0.0.0.0:80"), addr("[::]:80")]);
        Ok(())
    });
}

#[test]
fn listen_from_the_environment_is_one_address_a_list_or_a_toml_array() {
    Jail::expect_with(|jail| {
        write_etc(jail, "")?;
        for (value, expected) in [
            ("0.0.0.0:80", vec![addr("0.0.0.0:80")]),
            ("[::]:80", vec![addr("[::]:80")]),
            ("0.0.0.0:80, [::]:8080", vec![addr("0.0.0.0:80"), addr("[::]:8080")]),
            ("[\"10.0.0.1:80\", \"[::1]:80\"]", vec![addr("10.0.0.1:80"), addr("[::1]:80")]),
        ] {
            jail.set_env("IMBOX_HTTP__LISTEN", value);
            assert_eq!(load(jail, &Overrides::default())?.http.listen, expected, "{value}");
        }
        jail.set_env("IMBOX_HTTP__LISTEN", "");
        let error = load_err(jail, &Overrides::default())?;
        assert_eq!(
            error.to_string(),
            "http.listen = [] (from environment variable IMBOX_HTTP__LISTEN) is not valid: \
             it must name at least one address"
        );
        Ok(())
    });
}

#[test]
fn an_out_of_range_value_names_key_and_file() {
    Jail::expect_with(|jail| {
        write_etc(jail, "[limits]\nmax_frame_bytes = 10\n")?;
        let error = load_err(jail, &Overrides::default())?;
        let etc = jail.directory().join("etc-imbox.toml");
        assert_eq!(
            error.to_string(),
            format!(
                "limits.max_frame_bytes = 10 (from {}) is out of range: it must be between 1024 and 16777216",
                etc.display()
            )
        );
        Ok(())
    });
}

#[test]
fn an_out_of_range_value_names_the_variable() {
    Jail::expect_with(|jail| {
        write_etc(jail, "")?;
        jail.set_env("IMBOX_STORAGE__CACHE_MIB", "0");
        let error = load_err(jail, &Overrides::default())?;
        assert_eq!(
            error.to_string(),
            "storage.cache_mib = 0 (from environment variable IMBOX_STORAGE__CACHE_MIB) is out of range: \
             it must be between 1 and 4096"
        );
        Ok(())
    });
}

#[test]
fn a_value_of_the_wrong_type_names_key_and_source() {
    Jail::expect_with(|jail| {
        write_etc(jail, "")?;
        jail.set_env("IMBOX_LIMITS__SEND_BURST", "lots");
        let error = load_err(jail, &Overrides::default())?;
        let message = error.to_string();
        assert!(
            message.starts_with(
                "limits.send_burst (from environment variable IMBOX_LIMITS__SEND_BURST) is not valid:"
            ),
            "{message}"
        );
        assert!(message.contains("\"lots\""), "{message}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        write_etc(jail, "[http]\nlisten = [\"localhost:80\"]\n")?;
        let message = load_err(jail, &Overrides::default())?.to_string();
        assert!(message.starts_with("http.listen (from "), "{message}");
        assert!(message.contains("etc-imbox.toml"), "{message}");
        assert!(message.contains("\"localhost:80\" is not an \"ip:port\" address"), "{message}");
        Ok(())
    });
}

#[test]
fn unknown_keys_name_their_file_or_variable() {
    Jail::expect_with(|jail| {
        write_etc(jail, "[limits]\nmax_conections = 5\n")?;
        let error = load_err(jail, &Overrides::default())?;
        let etc = jail.directory().join("etc-imbox.toml");
        assert_eq!(
            error.to_string(),
            format!("unknown configuration key `limits.max_conections` (from {})", etc.display())
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        write_etc(jail, "")?;
        jail.create_file("data/settings.toml", "[htp]\nlisten = []\n")?;
        let message = load_err(jail, &Overrides::default())?.to_string();
        assert!(message.starts_with("unknown configuration key `htp` (from "), "{message}");
        assert!(message.ends_with("data/settings.toml)"), "{message}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        write_etc(jail, "")?;
        jail.set_env("IMBOX_LIMITS__MAX_CONECTIONS", "5");
        let error = load_err(jail, &Overrides::default())?;
        assert_eq!(
            error.to_string(),
            "unknown configuration key `limits.max_conections` \
             (from environment variable IMBOX_LIMITS__MAX_CONECTIONS)"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        // A single underscore where two belong names no key either.
        write_etc(jail, "")?;
        jail.set_env("IMBOX_LOG_LEVEL", "debug");
        let error = load_err(jail, &Overrides::default())?;
        assert!(matches!(&error, ConfigError::UnknownKey { key, .. } if key == "log_level"), "{error}");
        Ok(())
    });
}

#[test]
fn a_variable_naming_a_table_says_which_keys_it_has() {
    Jail::expect_with(|jail| {
        write_etc(jail, "")?;
        jail.set_env("IMBOX_LOG", "debug");
        let error = load_err(jail, &Overrides::default())?;
        assert_eq!(
            error.to_string(),
            "log (from environment variable IMBOX_LOG) is not valid: \
             it is a table; set one of its keys instead: IMBOX_LOG__LEVEL"
        );
        Ok(())
    });
}

#[test]
fn settings_may_not_move_the_data_dir() {
    Jail::expect_with(|jail| {
        let data = write_etc(jail, "")?;
        jail.create_file("data/settings.toml", "data_dir = \"/elsewhere\"\n")?;
        let error = load_err(jail, &Overrides::default())?;
        assert!(
            matches!(&error, ConfigError::DataDirInSettings { path } if *path == data.join("settings.toml"))
        );
        assert!(error
            .to_string()
            .starts_with(&format!("{} sets data_dir", data.join("settings.toml").display())));
        Ok(())
    });
}

#[test]
fn a_relative_data_dir_outside_the_flag_is_an_error() {
    Jail::expect_with(|jail| {
        jail.create_file("etc-imbox.toml", "data_dir = \"data\"\n")?;
        let error = load_err(jail, &Overrides::default())?;
        let etc = jail.directory().join("etc-imbox.toml");
        assert_eq!(
            error.to_string(),
            format!("data_dir = \"data\" (from {}) is not valid: it must be an absolute path", etc.display())
        );
        Ok(())
    });
}

#[test]
fn the_text_limit_must_fit_in_a_frame() {
    Jail::expect_with(|jail| {
        write_etc(jail, "[limits]\nmax_frame_bytes = 4096\n")?;
        jail.set_env("IMBOX_LIMITS__MAX_TEXT_BYTES", "3072");
        let error = load_err(jail, &Overrides::default())?;
        let etc = jail.directory().join("etc-imbox.toml");
        assert_eq!(
            error.to_string(),
            format!(
                "limits.max_text_bytes = 3072 (from environment variable IMBOX_LIMITS__MAX_TEXT_BYTES) must be \
                 less than limits.max_frame_bytes - 1024 = 3072 (limits.max_frame_bytes from {}), to leave \
                 room for the rest of the frame",
                etc.display()
            )
        );
        jail.set_env("IMBOX_LIMITS__MAX_TEXT_BYTES", "3071");
        assert_eq!(load(jail, &Overrides::default())?.limits.max_text_bytes, 3071);
        Ok(())
    });
}

#[test]
fn a_misspelt_log_level_is_an_error() {
    Jail::expect_with(|jail| {
        write_etc(jail, "")?;
        jail.set_env("IMBOX_LOG__LEVEL", "inof");
        let message = load_err(jail, &Overrides::default())?.to_string();
        assert!(
            message.starts_with(
                "log.level = \"inof\" (from environment variable IMBOX_LOG__LEVEL) is not valid"
            ),
            "{message}"
        );
        Ok(())
    });
}

#[test]
fn a_syntax_error_names_the_file() {
    Jail::expect_with(|jail| {
        write_etc(jail, "[limits\n")?;
        let message = load_err(jail, &Overrides::default())?.to_string();
        let etc = jail.directory().join("etc-imbox.toml");
        assert!(
            message.starts_with(&format!("configuration file {} is not valid TOML", etc.display())),
            "{message}"
        );
        Ok(())
    });
}

#[test]
fn to_toml_reads_back_as_the_same_config() {
    Jail::expect_with(|jail| {
        write_etc(
            jail,
            "box_name = \"attic \\\"north\\\"\"\n[http]\nlisten = [\"0.0.0.0:80\", \"[::]:80\"]\n",
        )?;
        let config = load(jail, &Overrides::default())?;
        let printed = config.to_toml();
        let reread: Config = toml::from_str(&printed).map_err(|e| format!("{e}\n{printed}"))?;
        assert_eq!(reread, config);
        assert!(printed.contains("[limits]"), "{printed}");
        Ok(())
    });
}
