//! The configuration's layers, through the real `telesub` binary: built-in defaults, a TOML
//! file, `TELESUB_…` environment variables, then flags, each validated alike.

use std::{
    path::{Path, PathBuf},
    process::Output,
    sync::OnceLock,
    time::Duration,
};

fn telesub() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| telesub_tests::built_binary("telesub"))
}

/// Runs `telesub args` in `dir` with exactly the `TELESUB_` variables given.
async fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(telesub());
    command.args(args).current_dir(dir).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("TELESUB_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("in time").unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"), "{output:?}");
    output
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test]
async fn each_layer_overrides_the_one_before_for_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("hub.toml"), "database_url = \"sqlite://from-file.db\"\n").unwrap();

    let out = run(d, &[], &["migrate"]).await;
    assert!(out.status.success() && text(&out).contains("sqlite://telesub.db"), "{}", text(&out));
    let out = run(d, &[], &["migrate", "--config", "hub.toml"]).await;
    assert!(text(&out).contains("sqlite://from-file.db"), "{}", text(&out));
    let env = [("TELESUB_DATABASE_URL", "sqlite://from-env.db")];
    let out = run(d, &env, &["migrate", "--config", "hub.toml"]).await;
    assert!(text(&out).contains("sqlite://from-env.db"), "{}", text(&out));
    // The file may come from the environment too.
    let out = run(d, &[("TELESUB_CONFIG", "hub.toml")], &["migrate"]).await;
    assert!(text(&out).contains("sqlite://from-file.db"), "{}", text(&out));
    let out = run(d, &env, &["migrate", "--config", "hub.toml", "--database", "sqlite://from-flag.db"]).await;
    assert!(text(&out).contains("sqlite://from-flag.db"), "{}", text(&out));
    for file in ["telesub.db", "from-file.db", "from-env.db", "from-flag.db"] {
        assert!(d.join(file).exists(), "{file} was not created");
    }

    // A bad value in any layer is refused, naming it, and nothing is opened.
    std::fs::write(d.join("bad.toml"), "database_url = \"mysql://db\"\n").unwrap();
    let out = run(d, &[], &["migrate", "--config", "bad.toml"]).await;
    assert!(!out.status.success() && text(&out).contains("mysql://db"), "{}", text(&out));
    let out = run(d, &[("TELESUB_DATABASE_URL", "mysql://db")], &["migrate"]).await;
    assert!(!out.status.success() && text(&out).contains("mysql://db"), "{}", text(&out));
    let out = run(d, &[], &["migrate", "--database", "mysql://db"]).await;
    assert!(!out.status.success() && text(&out).contains("mysql://db"), "{}", text(&out));
}

#[tokio::test]
async fn a_limit_is_validated_alike_in_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("zero.toml"), "[limits]\nmax_concurrent_requests = 0\n").unwrap();
    std::fs::write(d.join("five.toml"), "[limits]\nmax_concurrent_requests = 5\n").unwrap();
    let out = run(d, &[], &["migrate", "--config", "zero.toml"]).await;
    assert!(!out.status.success() && text(&out).contains("limits.max_concurrent_requests"), "{}", text(&out));
    let zero = [("TELESUB_LIMITS__MAX_CONCURRENT_REQUESTS", "0")];
    let out = run(d, &zero, &["migrate"]).await;
    assert!(!out.status.success() && text(&out).contains("limits.max_concurrent_requests"), "{}", text(&out));
    // The environment's good value wins over the file's bad one, and its bad one over the
    // file's good one.
    let out = run(d, &[("TELESUB_LIMITS__MAX_CONCURRENT_REQUESTS", "3")], &["migrate", "--config", "zero.toml"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run(d, &zero, &["migrate", "--config", "five.toml"]).await;
    assert!(!out.status.success(), "{}", text(&out));
    let out = run(d, &[("TELESUB_LIMITS__MAX_CONCURRENT_REQUESTS", "many")], &["migrate"]).await;
    assert!(!out.status.success() && text(&out).contains("many"), "{}", text(&out));
    // A misspelt key is an error in the environment as in the file.
    let out = run(d, &[("TELESUB_LIMITS__MAX_CONCURENT_REQUESTS", "3")], &["migrate"]).await;
    assert!(!out.status.success() && text(&out).contains("max_concurent_requests"), "{}", text(&out));
    // A member's share is part of the whole, whichever layers name the two.
    let share = [("TELESUB_LIMITS__MAX_REQUESTS_PER_MEMBER", "6")];
    let out = run(d, &share, &["migrate", "--config", "five.toml"]).await;
    assert!(!out.status.success() && text(&out).contains("limits.max_requests_per_member (6)"), "{}", text(&out));
    let out = run(d, &[("TELESUB_LIMITS__MAX_REQUESTS_PER_MEMBER", "5")], &["migrate", "--config", "five.toml"]).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn the_log_format_comes_from_any_layer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("json.toml"), "log_format = \"json\"\n").unwrap();
    std::fs::write(d.join("text.toml"), "log_format = \"text\"\n").unwrap();
    // `migrate` logs the migrations it applies; a JSON line starts with `{`.
    let is_json = |out: &Output| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "nothing was logged");
        lines.iter().all(|l| l.starts_with('{'))
    };
    let db = |n: &str| format!("sqlite://{n}.db");
    let out = run(d, &[], &["migrate", "--database", &db("a")]).await;
    assert!(out.status.success() && !is_json(&out), "{}", text(&out));
    let out = run(d, &[], &["migrate", "--config", "json.toml", "--database", &db("b")]).await;
    assert!(is_json(&out), "{}", text(&out));
    let json = [("TELESUB_LOG_FORMAT", "json")];
    let out = run(d, &json, &["migrate", "--config", "text.toml", "--database", &db("c")]).await;
    assert!(is_json(&out), "{}", text(&out));
    let out = run(d, &json, &["migrate", "--log-format", "text", "--database", &db("d")]).await;
    assert!(!is_json(&out), "{}", text(&out));
    // Written to a file, text has no colour codes.
    assert!(!text(&out).contains('\u{1b}'), "{}", text(&out));
    let out = run(d, &[("TELESUB_LOG_FORMAT", "yaml")], &["migrate"]).await;
    assert!(!out.status.success() && text(&out).contains("yaml"), "{}", text(&out));
}

/// The package's production configuration is read as the hub reads it (every key known), and
/// its systemd unit runs commands the `telesub` binary takes: migrations, then `serve`, reloaded
/// by SIGHUP, stopped by SIGTERM with room for the shutdown grace.
#[tokio::test]
async fn the_packaged_configuration_and_systemd_unit_are_what_the_hub_takes() {
    use clap::Parser;
    let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/cli/packaging");
    let settings = telesub_server::config::Settings::load(Some(&packaging.join("telesub.toml")), &Default::default())
        .expect("the packaged configuration");
    assert_eq!(settings.listen.port(), 50051);
    assert!(settings.metrics.listen.is_some_and(|a| a.ip().is_loopback()), "the metrics listener off loopback");
    let unit = std::fs::read_to_string(packaging.join("telesub.service")).unwrap();
    let value = |key: &str| -> Vec<String> {
        unit.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_owned).collect()
    };
    let commands: Vec<String> = value("ExecStartPre").into_iter().chain(value("ExecStart")).collect();
    assert_eq!(commands, ["/usr/bin/telesub migrate", "/usr/bin/telesub serve"]);
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        telesub_tools::cli::Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{command}: {e}"));
    }
    assert_eq!(value("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(value("KillSignal"), ["SIGTERM"]);
    let stop: u64 = value("TimeoutStopSec")[0].parse().unwrap();
    assert!(stop * 1000 > settings.shutdown_grace_ms, "TimeoutStopSec {stop} s leaves no room for the grace");
    assert_eq!(value("Environment"), ["TELESUB_CONFIG=/etc/telesub/telesub.toml"]);
    // systemd's own check, where systemd is installed.
    if let Ok(out) = std::process::Command::new("systemd-analyze").arg("--version").output()
        && out.status.success()
    {
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(packaging.join("telesub.service"))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        // The binary and user exist only once the package is installed.
        let real: Vec<&str> = said
            .lines()
            .filter(|l| !l.contains("/usr/bin/telesub") && !l.contains("telesub.toml") && !l.trim().is_empty())
            .collect();
        assert!(real.is_empty(), "systemd-analyze verify: {said}");
    }
}

/// Every section is read from the environment too: a bad value there is refused by its key,
/// as in a file (the metrics listener's and the retention policy's were once passed over).
#[tokio::test]
async fn every_section_is_read_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, value, key) in [
        ("TELESUB_METRICS__LISTEN", "not-an-address", "metrics.listen"),
        ("TELESUB_RETENTION__SAMPLES_YEARS", "0", "retention.samples_years"),
        ("TELESUB_TRACES__OTLP_ENDPOINT", "http://127.0.0.1:4317", "traces.otlp_endpoint"),
    ] {
        let out = run(d, &[(name, value)], &["migrate"]).await;
        let said = text(&out).to_lowercase();
        assert!(!out.status.success() && said.contains(key), "{name}: {said}");
    }
    let out = run(d, &[("TELESUB_RETENTION__SAMPLES_YEARS", "7")], &["migrate"]).await;
    assert!(out.status.success(), "{}", text(&out));
}
