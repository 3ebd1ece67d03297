//! The README and `docs/CSV.md`, run as written: every `sh` block, in order, in a fresh
//! folder, against the binaries of this build, on the backend under test.
//!
//! What the runner changes, and nothing else:
//! - `cargo run -- ` becomes the built `telesub`, `cargo run -p PACKAGE --bin NAME -- ` the
//!   built binary `NAME`; `cargo install` lines are left out (the built binaries are on `PATH`);
//! - the line that runs `scripts/test.sh` is left out (it is what runs this test), and so are
//!   `cargo bench` lines (each runs for minutes on a million households);
//! - the port `50051` becomes a free one (`TELESUB_LISTEN` and `TELESUB_ENDPOINT` name it
//!   too), and on PostgreSQL `TELESUB_DATABASE_URL` names a fresh database;
//! - a `telesub serve` line runs in the background, as in a terminal of its own, until every
//!   block has run; then it gets SIGTERM and must stop cleanly.
//!
//! A line `#> TEXT` after a command is what the command prints (standard output or error,
//! spaces collapsed); a ```` ```csv NAME ```` block is saved as the file `NAME`. The run fails
//! on the first command that exits non-zero, on a promised line that is not printed, on a
//! panic, and on colour codes in the hub's log file.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    sync::OnceLock,
    time::Duration,
};

use telesub_tests::{TestDb, built_binary};

/// One thing to do, from a document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A command line, with what it must print.
    Run { doc: &'static str, line: usize, command: String, expect: Vec<String> },
    /// A file to save before the commands after it run.
    Save { name: String, contents: String },
}

/// The steps of a Markdown document: its `sh` blocks' commands and its named `csv` blocks.
fn steps_of(doc: &'static str, text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else { continue };
        let info: Vec<&str> = info.split_whitespace().collect();
        let body: Vec<(usize, &str)> = lines.by_ref().take_while(|(_, l)| l.trim_start() != "```").collect();
        match info.as_slice() {
            ["sh"] => steps.extend(commands_of(doc, &body)),
            ["csv", name] => {
                let mut contents = String::new();
                for (_, l) in &body {
                    contents.push_str(l.trim_start());
                    contents.push_str("\r\n");
                }
                steps.push(Step::Save { name: (*name).to_owned(), contents });
            }
            _ => {}
        }
    }
    steps
}

/// The commands of one `sh` block: continued lines joined, comments left out, `#>` lines
/// attached to the command before them.
fn commands_of(doc: &'static str, body: &[(usize, &str)]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for &(n, raw) in body {
        let line = raw.trim();
        if let Some((start, mut command)) = pending.take() {
            match line.strip_suffix('\\') {
                Some(part) => {
                    command.push_str(part);
                    pending = Some((start, command));
                }
                None => {
                    command.push_str(line);
                    steps.push(Step::Run { doc, line: start + 1, command, expect: Vec::new() });
                }
            }
            continue;
        }
        if let Some(expected) = line.strip_prefix("#>") {
            match steps.last_mut() {
                Some(Step::Run { expect, .. }) => expect.push(collapse(expected)),
                _ => panic!("{doc}:{}: `#>` without a command before it", n + 1),
            }
        } else if line.is_empty() || line.starts_with('#') {
            // A comment for the reader.
        } else if let Some(part) = line.strip_suffix('\\') {
            pending = Some((n, part.to_owned()));
        } else {
            steps.push(Step::Run { doc, line: n + 1, command: line.to_owned(), expect: Vec::new() });
        }
    }
    assert!(pending.is_none(), "{doc}: a block ends in a continued line");
    steps
}

/// Runs of spaces as one space, trimmed.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The binaries the documents run, built once.
struct Binaries {
    /// Folder of `telesub` and `telesub-cli`, put first on `PATH`.
    bin_dir: PathBuf,
    /// `cargo run -p telesub-examples --bin NAME` → the built example.
    examples: Vec<(String, PathBuf)>,
}

fn binaries(example_names: &[String]) -> &'static Binaries {
    static BUILT: OnceLock<Binaries> = OnceLock::new();
    BUILT.get_or_init(|| {
        let telesub = built_binary("telesub");
        built_binary("telesub-cli");
        let examples = example_names.iter().map(|name| (name.clone(), built_binary(name))).collect();
        Binaries { bin_dir: telesub.parent().expect("a folder").to_owned(), examples }
    })
}

/// What the runner turns a command line into; `None` for lines it leaves out.
fn rewrite(command: &str, binaries: &Binaries, port: u16) -> Option<String> {
    if command.starts_with("cargo install ")
        || command.starts_with("cargo bench ")
        || command.starts_with("scripts/test.sh")
    {
        return None;
    }
    let mut command = command.to_owned();
    for (name, path) in &binaries.examples {
        command = command
            .replace(&format!("cargo run -p telesub-examples --bin {name} -- "), &format!("{} ", path.display()));
    }
    command = command
        .replace("cargo run -p telesub-cli -- ", "telesub-cli ")
        .replace("cargo run -p telesub --bin telesub -- ", "telesub ")
        .replace("cargo run -- ", "telesub ")
        .replace("50051", &port.to_string());
    assert!(!command.contains("cargo run"), "the runner does not know how to run: {command}");
    Some(command)
}

fn example_names(steps: &[Step]) -> Vec<String> {
    let mut names = Vec::new();
    for step in steps {
        if let Step::Run { command, .. } = step {
            let mut rest = command.as_str();
            while let Some(at) = rest.find("cargo run -p telesub-examples --bin ") {
                rest = &rest[at + "cargo run -p telesub-examples --bin ".len()..];
                let name = rest.split_whitespace().next().expect("a binary name").to_owned();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The script that runs the steps in one shell (so that `export` and variables carry from
/// one command to the next), each command's output and status kept in `steps/N.*`.
fn script(steps: &[Step], binaries: &Binaries, port: u16) -> (String, Vec<(usize, Step, String)>) {
    let mut script = String::from("set -u\nSERVE_PIDS=\"\"\n");
    let mut runs = Vec::new();
    for step in steps {
        match step {
            // Saved by the test before the script runs.
            Step::Save { .. } => {}
            Step::Run { command, .. } => {
                let Some(rewritten) = rewrite(command, binaries, port) else { continue };
                let n = runs.len();
                let (out, err, rc) = (format!("steps/{n}.out"), format!("steps/{n}.err"), format!("steps/{n}.rc"));
                if rewritten.starts_with("telesub serve") {
                    // As in a terminal of its own: in the background until the end.
                    writeln!(
                        script,
                        "{rewritten} >{out} 2>{err} &\npid=$!\nSERVE_PIDS=\"$SERVE_PIDS $pid\"\n\
                         for _ in $(seq 600); do grep -q '^telesub listening on' {out} && break; \
                         kill -0 $pid 2>/dev/null || break; sleep 0.1; done\n\
                         if grep -q '^telesub listening on' {out}; then echo 0 >{rc}; else echo 1 >{rc}; exit 0; fi"
                    )
                    .unwrap();
                } else {
                    writeln!(
                        script,
                        "{{ {rewritten}\n}} >{out} 2>{err} </dev/null\necho $? >{rc}\n[ \"$(cat {rc})\" = 0 ] || exit 0"
                    )
                    .unwrap();
                }
                runs.push((n, step.clone(), rewritten));
            }
        }
    }
    script.push_str(
        "for pid in $SERVE_PIDS; do kill -TERM $pid; wait $pid; echo $? >steps/serve-$pid.rc; done\necho done >steps/all\n",
    );
    (script, runs)
}

#[tokio::test]
async fn the_readme_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (readme, csv) = (read("README.md"), read("docs/CSV.md"));
    let steps: Vec<Step> = steps_of("README.md", &readme).into_iter().chain(steps_of("docs/CSV.md", &csv)).collect();
    assert!(steps.len() > 40, "the documents' commands were not found: {steps:?}");
    let binaries = tokio::task::spawn_blocking({
        let names = example_names(&steps);
        move || binaries(&names)
    })
    .await
    .unwrap();

    let db = TestDb::new().await;
    let work = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(work.path().join("steps")).unwrap();
    let port = free_port();
    let (text, runs) = script(&steps, binaries, port);
    std::fs::write(work.path().join("readme.sh"), &text).unwrap();
    for step in &steps {
        if let Step::Save { name, contents } = step {
            std::fs::write(work.path().join(name), contents).unwrap();
        }
    }

    let path = format!("{}:{}", binaries.bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut shell = tokio::process::Command::new("bash");
    shell
        .arg("readme.sh")
        .current_dir(work.path())
        .env("PATH", path)
        .env("TELESUB_LISTEN", format!("127.0.0.1:{port}"))
        .env("TELESUB_ENDPOINT", format!("https://localhost:{port}"))
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env_remove("TELESUB_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if db.is_postgres() {
        shell.env("TELESUB_DATABASE_URL", db.url());
    } else {
        shell.env_remove("TELESUB_DATABASE_URL");
    }
    let status = tokio::time::timeout(Duration::from_secs(900), shell.status())
        .await
        .expect("the documents' commands finish within 15 minutes")
        .expect("run bash");
    assert!(status.success(), "the runner's script failed: {status}");

    let steps_dir = work.path().join("steps");
    let file = |name: String| std::fs::read_to_string(steps_dir.join(&name)).unwrap_or_default();
    let mut transcript = String::new();
    for (n, step, rewritten) in &runs {
        let Step::Run { doc, line, expect, .. } = step else { unreachable!() };
        let (rc, out, err) = (file(format!("{n}.rc")), file(format!("{n}.out")), file(format!("{n}.err")));
        writeln!(transcript, "$ {rewritten}\n{out}{err}").unwrap();
        let fail = |why: String| -> ! {
            panic!(
                "{doc}:{line}: {why}\n---- transcript ----\n{transcript}---- {doc}:{line} ----\n$ {rewritten}\n\
                 (exit status {})\n{out}{err}",
                rc.trim()
            )
        };
        match rc.trim() {
            "0" => {}
            "" => fail("did not run (an earlier command stopped the script)".into()),
            code => fail(format!("exited with status {code}")),
        }
        if err.contains("panicked") || out.contains("panicked") {
            fail("panicked".into());
        }
        let printed = collapse(&format!("{out}\n{err}"));
        for expected in expect {
            if !printed.contains(expected.as_str()) {
                fail(format!("does not print what the document says: {expected:?}"));
            }
        }
        if rewritten.starts_with("telesub serve") && err.contains('\u{1b}') {
            fail("the hub wrote colour codes into its log file".into());
        }
    }
    assert_eq!(file("all".into()).trim(), "done", "the script did not reach its end\n{transcript}");
    for entry in std::fs::read_dir(&steps_dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("serve-") {
            assert_eq!(file(name.clone()).trim(), "0", "a hub did not stop cleanly on SIGTERM ({name})");
        }
    }
}

#[test]
fn commands_are_read_as_a_shell_reads_them() {
    let doc = "text\n```sh\n# a comment\ntelesub gen households \\\n    --count 2\n#>   2 households  \n\nls\n```\n\
               ```csv a.csv\nx,y\n1,2\n```\n```rust\nlet x = 1;\n```\n";
    let steps = steps_of("doc", doc);
    assert_eq!(
        steps,
        vec![
            Step::Run {
                doc: "doc",
                line: 4,
                command: "telesub gen households --count 2".into(),
                expect: vec!["2 households".into()]
            },
            Step::Run { doc: "doc", line: 8, command: "ls".into(), expect: vec![] },
            Step::Save { name: "a.csv".into(), contents: "x,y\r\n1,2\r\n".into() },
        ]
    );
    let binaries = Binaries { bin_dir: PathBuf::new(), examples: vec![("whoami".into(), PathBuf::from("/b/whoami"))] };
    assert_eq!(
        rewrite("cargo run -p telesub-examples --bin whoami -- https://localhost:50051 ./dev-tls VNPT", &binaries, 7),
        Some("/b/whoami https://localhost:7 ./dev-tls VNPT".into())
    );
    assert_eq!(rewrite("cargo run -- demo", &binaries, 7), Some("telesub demo".into()));
    assert_eq!(rewrite("cargo install --path server/cli", &binaries, 7), None);
    assert_eq!(rewrite("scripts/test.sh", &binaries, 7), None);
}
