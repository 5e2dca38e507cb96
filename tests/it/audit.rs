//! `orgwarden audit` over real snapshots of the simulator: findings, their lifecycle, the
//! roster's failure mode and exemptions.

use chrono::Duration;
use serde_json::Value;

use crate::helpers::*;

/// The exact field names of a finding in `audit --format json`.
const FIELDS: &[&str] = &[
    "rule",
    "severity",
    "subject_kind",
    "subject_id",
    "subject",
    "evidence",
    "action",
    "status",
    "first_seen",
    "last_seen",
    "resolved_at",
    "controls",
];

async fn snapshot_and_audit(config: &std::path::Path) -> Vec<Value> {
    let (code, out, err) = run(orgwarden(config, &["snapshot"])).await;
    assert_eq!(code, 0, "snapshot failed: {out}{err}");
    let (code, out, err) = run(orgwarden(config, &["audit", "--format", "json"])).await;
    assert_eq!(code, 0, "audit failed: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("audit JSON: {e}\n{out}"))
}

fn find<'a>(findings: &'a [Value], rule: &str, subject_id: &str) -> Option<&'a Value> {
    findings
        .iter()
        .find(|f| f["rule"] == rule && f["subject_id"] == subject_id)
}

#[tokio::test]
async fn findings_have_the_documented_fields_and_a_lifecycle() {
    let sim = sim(small()).await;
    let (leaver, key) = sim.with_state(|s| {
        let now = s.now();
        let leaver = s.add_user(
            "leaver@example.com",
            "Leaves Soon",
            "developer",
            now - Duration::days(90),
        );
        let key = s.add_api_key(
            "leaver's pipeline",
            None,
            Some(&leaver),
            "active",
            now - Duration::days(30),
        );
        (leaver, key)
    });
    let promoted = sim.with_state(|s| {
        s.users()
            .into_iter()
            .find(|u| u["role"] == "user")
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "");

    let first = snapshot_and_audit(&config).await;
    assert!(!first.is_empty(), "the seeded organization has findings");
    for finding in &first {
        let mut keys: Vec<&str> = finding
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "{finding}");
        assert_eq!(finding["status"], "new", "first audit: everything is new");
        assert!(!finding["controls"].as_array().unwrap().is_empty());
    }
    assert!(find(&first, "orphaned_keys", &key).is_none());

    sim.with_state(|s| {
        assert!(s.remove_user(&leaver));
        assert!(s.set_user_role(&promoted, "admin"));
    });
    let second = snapshot_and_audit(&config).await;
    let orphan = find(&second, "orphaned_keys", &key).expect("the leaver's key is orphaned");
    assert_eq!(orphan["status"], "new");
    assert_eq!(orphan["action"], "deactivate_key");
    assert_eq!(orphan["subject"], "leaver's pipeline");
    assert!(
        orphan["evidence"]
            .as_str()
            .unwrap()
            .contains("leaver@example.com"),
        "{orphan}"
    );
    let escalation =
        find(&second, "privilege_escalation", &promoted).expect("the promotion is reported");
    assert_eq!(escalation["status"], "new");
    // What the first audit found and is still there is now open, with its first sighting kept.
    for old in &first {
        let id = old["subject_id"].as_str().unwrap();
        let rule = old["rule"].as_str().unwrap();
        if let Some(now) = find(&second, rule, id) {
            assert_eq!(now["status"], "open", "{now}");
            assert_eq!(now["first_seen"], old["first_seen"]);
        }
    }

    // The key is deactivated in the Console: the finding resolves.
    sim.with_state(|s| assert!(s.set_key_status(&key, "inactive")));
    let third = snapshot_and_audit(&config).await;
    let resolved = find(&third, "orphaned_keys", &key).expect("listed as resolved");
    assert_eq!(resolved["status"], "resolved");
    assert!(resolved["resolved_at"].is_string());
    let escalation = find(&third, "privilege_escalation", &promoted);
    assert_eq!(
        escalation.map(|f| f["status"].clone()),
        Some(Value::from("resolved")),
        "an escalation is reported for the snapshot where it happened"
    );
}

#[tokio::test]
async fn a_malformed_roster_skips_only_its_rule() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("departed.csv");
    std::fs::write(
        &roster,
        "email,last_day\nok@example.com,2026-01-01\n\"broken,2026-01-02\n",
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        &format!(
            "[rules.offboarding_roster]\nroster_csv = \"{}\"\n[rules.stale_invites]\nmax_pending_days = 0\n",
            roster.display()
        ),
    );
    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(orgwarden(&config, &["audit"])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("rule offboarding_roster not evaluated") && err.contains("line"),
        "{err}"
    );
    assert!(
        out.contains("stale_invites"),
        "other rules still ran:\n{out}"
    );
}

#[tokio::test]
async fn exempted_findings_are_listed_as_exempted() {
    let sim = sim(small()).await;
    let email = sim.with_state(|s| {
        let now = s.now();
        s.add_user("alice@departed.example", "Alice", "user", now);
        "alice@departed.example".to_owned()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        &format!(
            "[rules.departed_domains]\ndeparted_domains = [\"departed.example\"]\n\n[[exemptions]]\nemail = \"{email}\"\nreason = \"kept for the handover\"\n"
        ),
    );
    let findings = snapshot_and_audit(&config).await;
    let alice: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "departed_domains" && f["subject"] == email.as_str())
        .collect();
    assert_eq!(alice.len(), 1, "{findings:#?}");
    assert_eq!(alice[0]["status"], "exempted");
    assert!(alice[0]["evidence"]
        .as_str()
        .unwrap()
        .contains("kept for the handover"));
}
