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
    let mut command = orgwarden(&config, &["check-config"]);
    command.env_remove("ANTHROPIC_ADMIN_KEY");
    let (code, _, err) = run(command).await;
    assert_eq!(code, 78);
    assert!(err.contains("api.admin_key"), "{err}");
}
