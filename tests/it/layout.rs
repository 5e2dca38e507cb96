//! The report's HTML in a real browser: headless Chromium lays it out at a phone's width (390 px)
//! and a desktop's (1200 px), and the page must not scroll sideways.
//!
//! Chromium is required, not optional: `.ci/run` installs Debian's `chromium`. Without it this
//! test fails and says how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mail_parser::MessageParser;
use orgwarden::clock::{ManualClock, SharedClock};
use orgwarden::config::{Config, Environment};
use orgwarden::jobs::{self, JobContext, ReportOptions};
use orgwarden::store::Store;
use orgwarden_sim::DEMO_ADMIN_KEY;

use crate::helpers::*;

/// The Chromium binary: `$CHROMIUM`, else `chromium` or `chromium-browser` on the PATH.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CHROMIUM={} is not a file: install Chromium with `apt-get install -y chromium` \
             (Debian; .ci/run does this) or point CHROMIUM at its binary",
            path.display()
        );
        return path;
    }
    for name in ["chromium", "chromium-browser"] {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        });
        if let Some(path) = found {
            return path;
        }
    }
    panic!(
        "the layout test needs headless Chromium and found none: install it with \
         `apt-get install -y chromium` (Debian; .ci/run does this) or set CHROMIUM to its path"
    );
}

/// What the browser measured for one page laid out in a frame `width` pixels wide.
#[derive(Debug, PartialEq, Eq)]
struct Measured {
    /// The frame's viewport (`window.innerWidth`).
    viewport: u32,
    /// `document.documentElement.scrollWidth`: wider than the viewport means sideways scrolling.
    scroll_width: u32,
}

/// Lays `html` out in headless Chromium inside an iframe `width` pixels wide (a desktop
/// browser window cannot be narrower than about 500 px, a frame can) and reads the widths a
/// script in the host page writes into the DOM.
fn measure(html: &str, width: u32, dir: &Path) -> Measured {
    let escaped = html.replace('&', "&amp;").replace('"', "&quot;");
    let host = format!(
        "<!DOCTYPE html><html><body style=\"margin:0\">\
         <iframe id=\"f\" style=\"border:0;width:{width}px;height:900px\" srcdoc=\"{escaped}\" \
         onload=\"var d=this.contentDocument;document.body.setAttribute('data-measured',\
         this.contentWindow.innerWidth+'x'+d.documentElement.scrollWidth)\"></iframe>\
         </body></html>"
    );
    let page = dir.join(format!("host-{width}.html"));
    std::fs::write(&page, host).unwrap();
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1400,1000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join(format!("profile-{width}")).display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&output.stdout);
    let measured = dom
        .split("data-measured=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| {
            panic!(
                "chromium wrote no measurement (status {}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let (viewport, scroll_width) = measured.split_once('x').unwrap();
    Measured {
        viewport: viewport.parse().unwrap(),
        scroll_width: scroll_width.parse().unwrap(),
    }
}

/// A report with hostile and very long values, as the job renders and mails it.
async fn report_html(dir: &Path) -> String {
    let sim = sim(small()).await;
    crate::report::seed_hostile(&sim);
    let now = sim.with_state(|s| s.now());
    let text = format!(
        r#"
[api]
base_url = "{base}"
admin_key = "{key}"
requests_per_second = 0

[store]
path = "{db}"

[rules.orphaned_keys]
remediate = true

[rules.stale_invites]
remediate = true

[mail]
from = "orgwarden <orgwarden@example.com>"
to = ["security@example.com"]
transport = "file"
dir = "{outbox}"

[report]
out_dir = "{reports}"
"#,
        base = sim.base_url(),
        key = DEMO_ADMIN_KEY,
        db = dir.join("orgwarden.db").display(),
        outbox = dir.join("outbox").display(),
        reports = dir.join("reports").display(),
    );
    let (config, _) = Config::from_toml(&text, &Environment::default())
        .map_err(|e| e.to_string())
        .unwrap();
    let mut store = Store::open_writer(&config.store.path, "test", now).unwrap();
    let clock: SharedClock = Arc::new(ManualClock::new(now));
    let mut ctx = JobContext::new(&config, &mut store, clock);
    jobs::audit_cycle(&mut ctx).await.unwrap();
    let options = ReportOptions {
        send: true,
        ..ReportOptions::default()
    };
    jobs::report_job(&mut ctx, &options).await.unwrap();
    let eml = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "eml"))
        .expect("the email");
    let bytes = std::fs::read(eml).unwrap();
    let message = MessageParser::default().parse(&bytes).unwrap();
    message.body_html(0).unwrap().into_owned()
}

#[tokio::test]
async fn the_report_never_scrolls_sideways_at_390_or_1200_px() {
    // Fail at once, with the install hint, when there is no Chromium.
    chromium();
    let dir = tempfile::tempdir().unwrap();
    let html = report_html(dir.path()).await;
    assert!(
        html.contains(&"A".repeat(150)),
        "a long unbroken value is in the email"
    );
    assert!(
        html.contains("Waiting actions"),
        "the plan section is there"
    );

    // The measurement itself can tell a page that is too wide.
    let wide = "<!DOCTYPE html><html><body><div style=\"width:942px\">x</div></body></html>";
    let measured = measure(wide, 390, dir.path());
    assert_eq!(measured.viewport, 390);
    assert!(measured.scroll_width > 900, "{measured:?}");

    for width in [390, 1200] {
        let measured = measure(&html, width, dir.path());
        assert_eq!(
            measured,
            Measured {
                viewport: width,
                scroll_width: width
            },
            "at {width} px"
        );
    }
}
