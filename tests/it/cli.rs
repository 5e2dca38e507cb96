//! The command line: check-config exit codes, every problem listed, env overrides, credentials.

use crate::helpers::*;

#[tokio::test]
async fn check_config_lists_every_problem_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[api]\nbase_url = \"http://api.example.com\"\nmax_in_flight = 0\n[log]\nlevle = \"info\"\n[remediation]\nmode = \"yolo\"\n",
    )
    .unwrap();
    let (code, _, err) = run(orgwarden(&config, &["check-config"])).await;
    assert_eq!(code, 78, "{err}");
    for want in [
        "api.base_url: must be https unless the host is loopback",
        "api.max_in_flight",
        "log.levle: unknown key",
        "remediation.mode",
        "4 problems",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
}

#[tokio::test]
async fn check_config_online_prints_the_organization() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "https://unused.example", "");
    let org = sim.snapshot_state().organization();
    // The environment wins over the file.
    let mut command = orgwarden(&config, &["check-config", "--online"]);
    command.env("ORGWARDEN__API__BASE_URL", sim.base_url());
    let (code, out, err) = run(command).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(org["name"].as_str().unwrap()), "{out}");
    assert!(out.contains(org["id"].as_str().unwrap()), "{out}");
}

#[tokio::test]
async fn the_admin_key_is_read_from_the_credentials_directory() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "");
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(
        creds.join("anthropic_admin_key"),
        format!("{}\n", orgwarden_sim::DEMO_ADMIN_KEY),
    )
    .unwrap();
    let mut command = orgwarden(&config, &["check-config", "--online"]);
    command
        .env("ANTHROPIC_ADMIN_KEY", "sk-ant-admin01-wrong")
        .env("CREDENTIALS_DIRECTORY", &creds);
    let (code, out, err) = run(command).await;
    assert_eq!(code, 0, "{out}{err}");
    // Without the credential the (wrong) environment key is used and refused.
    let (code, _, err) = run({
        let mut c = orgwarden(&config, &["check-config", "--online"]);
        c.env("ANTHROPIC_ADMIN_KEY", "sk-ant-admin01-wrong");
        c
    })
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("401") && !err.contains("sk-ant-admin01-wrong"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_admin_key_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "https://api.anthropic.com", "");
    // The same exit code from every command that needs the key (the fault matrix found
    // `snapshot` exiting 1 where `check-config` exits 78).
    for args in [
        &["check-config"][..],
        &["snapshot"][..],
        &["usage", "--fetch"][..],
    ] {
        let mut command = orgwarden(&config, args);
        command.env_remove("ANTHROPIC_ADMIN_KEY");
        let (code, _, err) = run(command).await;
        assert_eq!(code, 78, "{args:?}: {err}");
        assert!(err.contains("api.admin_key"), "{args:?}: {err}");
        // Refused before the database is opened: no empty database (nor its journal) is left.
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["config.toml"], "{args:?} created a file");
    }
}

#[tokio::test]
async fn a_secret_on_a_broken_line_never_reaches_stderr() {
    let dir = tempfile::tempdir().unwrap();
    for (text, secret) in [
        (
            "[api]\nadmin_key = \"sk-ant-admin01-CLISECRET-one\n[store]\npath = \"x.db\"\n",
            "CLISECRET-one",
        ),
        (
            "[api]\nadmin_key = \"sk-ant-admin01-CLISECRET-two\" trailing\n",
            "CLISECRET-two",
        ),
        (
            "[mail]\npassword = \"cli-password-three\" = 1\n",
            "cli-password-three",
        ),
        (
            "[mail]\nhost = \"smtp.example.com\"\npassword = 'cli-password-four\n",
            "cli-password-four",
        ),
    ] {
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        for args in [&["check-config"][..], &["status"][..], &["snapshot"][..]] {
            let (code, out, err) = run(orgwarden(&config, args)).await;
            assert_eq!(code, 78, "{args:?} on {text:?}: {err}");
            assert!(err.contains("line "), "the error says where: {err}");
            assert!(!err.contains(secret), "{args:?} printed the secret: {err}");
            assert!(!out.contains(secret), "{args:?} printed the secret: {out}");
        }
    }
}

#[tokio::test]
async fn history_newest_first_with_a_limit_and_quiet_on_a_closed_pipe() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", "");
    {
        let store = orgwarden::store::Store::open_writer(
            &dir.path().join("orgwarden.db"),
            "test",
            wall_now(),
        )
        .unwrap();
        // Enough rows that the output is far larger than a pipe's buffer.
        for _ in 0..3000 {
            let id = store.begin_run(wall_now()).unwrap();
            store
                .fail_run(
                    id,
                    &format!("failure {id} {}", "x".repeat(80)),
                    1,
                    0,
                    wall_now(),
                )
                .unwrap();
        }
    }
    let (code, out, err) = run(orgwarden(&config, &["history", "--limit", "2"])).await;
    assert_eq!(code, 0, "{err}");
    let ids: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ids, ["3000", "2999"], "{out}");
    // Piped output has whole cells: the error is longer than a terminal cell.
    assert!(
        out.contains(&format!("failure 3000 {}", "x".repeat(80))),
        "{out}"
    );

    // `orgwarden history | head -1`: the reader goes away after one line.
    let mut child = orgwarden(&config, &["history"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("ID"), "{first}");
    // The pipe's read end is closed here.
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "quiet: {stderr}");
}

#[tokio::test]
async fn check_config_online_reads_every_directory_source_and_names_the_one_that_is_down() {
    use orgwarden_sim::idp::okta::DEMO_OKTA_TOKEN;
    use orgwarden_sim::{OktaOptions, OktaSim};
    let sim = sim(small()).await;
    let okta = OktaSim::start_local(&sim, OktaOptions::default())
        .await
        .unwrap();
    // A port nobody listens on, and a listener that never answers (the deadline must end it).
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("okta-token");
    std::fs::write(&token_file, DEMO_OKTA_TOKEN).unwrap();
    let source = |name: &str, url: &str| {
        format!(
            "[[directories]]\nname = \"{name}\"\ntype = \"okta\"\ndomains = [\"{name}.example\"]\n\
             org_url = \"{url}\"\napi_token_file = {:?}\n\n",
            token_file.display().to_string()
        )
    };
    let up = source("okta", &okta.base_url());
    let config = write_config(dir.path(), &sim.base_url(), &up);
    let (code, out, err) = run(orgwarden(
        &config,
        &["check-config", "--online", "--timeout", "5s"],
    ))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let state = sim.snapshot_state();
    let active = state
        .directory()
        .iter()
        .filter(|e| e.state.is_active())
        .count();
    assert!(
        out.contains(&format!("directory okta (okta): {active} active, ")),
        "{out}"
    );

    let all = format!(
        "{up}{}{}",
        source("down", &format!("http://{refused}")),
        source("silent", &format!("http://{silent_addr}"))
    );
    let config = write_config(dir.path(), &sim.base_url(), &all);
    let started = std::time::Instant::now();
    let (code, out, err) = run(orgwarden(
        &config,
        &["check-config", "--online", "--timeout", "3s"],
    ))
    .await;
    assert_eq!(code, 1, "{out}{err}");
    // The organization and the working source are still reported; each failing one is named.
    assert!(out.contains("organization: "), "{out}");
    assert!(out.contains("directory okta (okta): "), "{out}");
    assert!(err.contains("orgwarden: directory down: "), "{err}");
    assert!(
        err.contains("orgwarden: directory silent: no complete read within 3s"),
        "{err}"
    );
    // The sources are read together, each within the deadline.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(!out.contains(DEMO_OKTA_TOKEN) && !err.contains(DEMO_OKTA_TOKEN));
    drop(silent);
}
