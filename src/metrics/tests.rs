use super::*;

fn sample() -> MetricsInput {
    let mut input = MetricsInput {
        version: "1.2.3".to_owned(),
        ..MetricsInput::default()
    };
    input.jobs.insert(
        "snapshot".to_owned(),
        JobMetrics {
            last_success: Some(1_700_000_000.0),
            duration_seconds: Some(2.5),
            failures: 3,
        },
    );
    input
        .findings
        .insert(("orphaned_keys".into(), "high".into(), "new".into()), 2);
    input
        .actions
        .insert(("deactivate_key".into(), "succeeded".into()), 1);
    input.api_requests.insert("200".into(), 7);
    input
}

#[test]
fn counters_are_named_by_their_total_sample_and_there_is_no_eof() {
    let text = render(&sample());
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE orgwarden_job_failures_total counter\n"),
        "{text}"
    );
    assert!(text.contains("orgwarden_job_failures_total{job=\"snapshot\"} 3\n"));
    assert!(text.contains("# TYPE orgwarden_findings gauge\n"));
    assert!(text.contains(
        "orgwarden_findings{rule=\"orphaned_keys\",severity=\"high\",status=\"new\"} 2\n"
    ));
    assert!(text.contains("orgwarden_build_info{version=\"1.2.3\"} 1\n"));
    assert!(text.contains("orgwarden_last_success_timestamp_seconds{job=\"snapshot\"} 1700000000"));
}

#[test]
fn a_hostile_label_value_is_escaped() {
    let mut input = sample();
    input.snapshot_objects.insert("a\"b\\c\nd".to_owned(), 1);
    let text = render(&input);
    assert!(
        text.contains(r#"orgwarden_snapshot_objects{kind="a\"b\\c\nd"} 1"#),
        "{text}"
    );
}

#[test]
fn the_sample_alert_rules_name_only_metrics_that_exist() {
    let text = render(&sample());
    let rules = include_str!("../../contrib/prometheus-alerts.yml");
    let mut named = 0;
    for (at, _) in rules.match_indices("orgwarden_") {
        let name: String = rules[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        named += 1;
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "contrib/prometheus-alerts.yml names {name}, which is not rendered:\n{text}"
        );
    }
    assert!(named >= 3, "the rules name the metrics they watch");
}
