//! The OpenLDAP `slapd` harness (Debian packages `slapd` and `ldap-utils`, installed by
//! `.ci/run`): a real server started as a child process with TLS on free loopback ports and
//! loaded with the seeded simulator directory ([`SimState::directory`]). The LDAP source tests
//! (`ldap.rs`) and the end-to-end audits (`reconcile.rs`) use it.
//!
//! The tree holds every seeded person but the deleted ones (LDAP forgets a deleted entry) under
//! `ou=people,dc=example,dc=com`, with each disabled state written three ways, so one tree
//! serves every rule: `userAccountControl` 514 (Active Directory's bit 0x2), `pwdAccountLockedTime`
//! (suspended: `000001010000Z`, locked permanently; locked out: since the state change) and
//! `shadowExpire` (deprovisioned: the day of the state change). The Microsoft attributes come from
//! slapd's own `msuser.schema` through `extensibleObject`. The reader account the tests bind as
//! may have at most 10 entries per search unless it pages (`limits ... size.pr=unlimited`), so a
//! read of the whole tree proves the source sends the RFC 2696 control.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use orgwarden::config::{LdapDisabledRule, LdapSettings};
use orgwarden_sim::{DirectoryEntry, DirectoryState, SimState};
use secrecy::SecretString;

pub const SUFFIX: &str = "dc=example,dc=com";
pub const PEOPLE: &str = "ou=people,dc=example,dc=com";
pub const READER_DN: &str = "cn=reader,dc=example,dc=com";
pub const READER_PASSWORD: &str = "reader-Secret-7f3a";
/// Entries the reader gets from one search without paging.
pub const UNPAGED_LIMIT: usize = 10;

/// A running `slapd` with the seeded tree; killed when dropped.
pub struct Slapd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `ldap://127.0.0.1:PORT` (StartTLS offered).
    pub ldap_url: String,
    /// `ldaps://127.0.0.1:PORT`.
    pub ldaps_url: String,
    /// The PEM of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// The seeded directory the tree was loaded from (deleted people included).
    pub entries: Vec<DirectoryEntry>,
}

impl Slapd {
    /// Starts slapd with the directory of `state`, and waits until both ports accept.
    pub fn start(state: &SimState) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::mail::pki();
        let ca_file = dir.path().join("ca.pem");
        std::fs::copy(&pki.ca_pem, &ca_file).unwrap();
        std::fs::copy(&pki.cert_pem, dir.path().join("cert.pem")).unwrap();
        std::fs::copy(&pki.key_pem, dir.path().join("key.pem")).unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let config = dir.path().join("slapd.conf");
        std::fs::write(&config, slapd_conf(dir.path())).unwrap();
        let entries = state.directory();
        let data = dir.path().join("data.ldif");
        std::fs::write(&data, ldif(&entries)).unwrap();

        let load = Command::new(sbin("slapadd"))
            .arg("-f")
            .arg(&config)
            .arg("-l")
            .arg(&data)
            .output()
            .expect("slapadd runs (apt-get install slapd ldap-utils)");
        assert!(
            load.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&load.stderr)
        );

        let (ldap_port, ldaps_port) = (free_port(), free_port());
        let ldap_url = format!("ldap://127.0.0.1:{ldap_port}");
        let ldaps_url = format!("ldaps://127.0.0.1:{ldaps_port}");
        let log = std::fs::File::create(dir.path().join("slapd.log")).unwrap();
        // `-d 0`: stay in the foreground (a child we can kill) without debug output.
        let child = Command::new(sbin("slapd"))
            .arg("-f")
            .arg(&config)
            .arg("-h")
            .arg(format!("{ldap_url}/ {ldaps_url}/"))
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("slapd starts (apt-get install slapd)");
        let mut slapd = Slapd {
            dir,
            child: Some(child),
            ldap_url,
            ldaps_url,
            ca_file,
            entries,
        };
        slapd.wait_ready(&[ldap_port, ldaps_port]);
        slapd
    }

    fn wait_ready(&mut self, ports: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ports
                .iter()
                .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok())
            {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().unwrap());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "slapd did not start ({exited:?}): {}",
                std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills slapd and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A `[[directories]]` entry named `name`, authoritative for `domain`, that reads the people
    /// over `url` as the reader (the password in a file), trusting the test CA, disabled by
    /// `rule` (a TOML value: `"active_directory"`, `"shadow_expire"`, ...).
    pub fn directory_toml(&self, name: &str, domain: &str, url: &str, rule: &str) -> String {
        let password = self.dir.path().join("reader-password");
        std::fs::write(&password, READER_PASSWORD).unwrap();
        format!(
            "[[directories]]\nname = \"{name}\"\ntype = \"ldap\"\ndomains = [\"{domain}\"]\n\
             url = \"{url}\"\nstarttls = {}\nca_file = {:?}\nbind_dn = \"{READER_DN}\"\n\
             bind_password_file = {:?}\nbase_dn = \"{PEOPLE}\"\n\
             filter = \"(objectClass=inetOrgPerson)\"\npage_size = 50\n\
             email_attributes = [\"mail\", \"proxyAddresses\", \"userPrincipalName\"]\n\
             disabled_rule = \"{rule}\"\n",
            url.starts_with("ldap://"),
            self.ca_file.display().to_string(),
            password.display().to_string(),
        )
    }

    /// Settings that read the people as the reader, over `url`, trusting the test CA.
    pub fn settings(&self, url: &str, disabled: LdapDisabledRule) -> LdapSettings {
        LdapSettings {
            url: url.to_owned(),
            starttls: url.starts_with("ldap://"),
            ca_file: Some(self.ca_file.clone()),
            bind_dn: READER_DN.to_owned(),
            bind_password: SecretString::from(READER_PASSWORD),
            base_dn: PEOPLE.to_owned(),
            filter: "(objectClass=inetOrgPerson)".to_owned(),
            page_size: 500,
            email_attributes: ["mail", "proxyAddresses", "userPrincipalName"]
                .map(str::to_owned)
                .to_vec(),
            disabled,
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Debian installs slapd and slapadd in /usr/sbin, which a non-root PATH may lack.
fn sbin(program: &str) -> PathBuf {
    let path = Path::new("/usr/sbin").join(program);
    if path.exists() {
        path
    } else {
        PathBuf::from(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn slapd_conf(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/msuser.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/cert.pem
TLSCertificateKeyFile {dir}/key.pem
database mdb
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
rootpw admin-{READER_PASSWORD}
directory {dir}/db
overlay ppolicy
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="{READER_DN}" read by * none
limits dn.exact="{READER_DN}" size.soft={UNPAGED_LIMIT} size.hard={UNPAGED_LIMIT} size.pr=unlimited size.prtotal=unlimited
"#
    )
}

pub fn dn(entry: &DirectoryEntry) -> String {
    format!("uid={},{PEOPLE}", entry.id)
}

/// The seeded state changes at whole seconds, as LDAP's GeneralizedTime keeps them.
pub fn changed(entry: &DirectoryEntry) -> DateTime<Utc> {
    entry.state_changed.trunc_subsecs(0)
}

fn shadow_days(entry: &DirectoryEntry) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    (entry.state_changed.date_naive() - epoch).num_days()
}

/// The seeded tree as LDIF: the suffix, the reader, a service account without mail (not a
/// person), and the people.
fn ldif(entries: &[DirectoryEntry]) -> String {
    let mut out = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: {READER_DN}\nobjectClass: person\ncn: reader\nsn: reader\nuserPassword: {READER_PASSWORD}\n\n\
         dn: uid=svc-backup,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: svc-backup\ncn: backup\nsn: backup\n\n"
    );
    for entry in entries {
        if entry.state == DirectoryState::Deleted {
            continue;
        }
        let mut lines = vec![
            format!("dn: {}", dn(entry)),
            "objectClass: inetOrgPerson".to_owned(),
            "objectClass: shadowAccount".to_owned(),
            "objectClass: extensibleObject".to_owned(),
            format!("uid: {}", entry.id),
            format!("cn: {} {}", entry.given_name, entry.family_name),
            format!(
                "sn: {}",
                if entry.family_name.is_empty() {
                    &entry.id
                } else {
                    &entry.family_name
                }
            ),
            // Mixed case on the wire; the source lower-cases.
            format!("mail: {}", capitalized(&entry.email)),
            format!("userPrincipalName: {}", entry.email.to_uppercase()),
        ];
        // The aliases first, so the source must find the `SMTP:` primary among them.
        for alias in &entry.aliases {
            lines.push(format!("proxyAddresses: smtp:{alias}"));
        }
        lines.push(format!("proxyAddresses: SMTP:{}", entry.email));
        lines.push(format!("proxyAddresses: X500:/o=Example/cn={}", entry.id));
        let disabled = !entry.state.is_active();
        lines.push(format!(
            "userAccountControl: {}",
            if disabled { 514 } else { 512 }
        ));
        match entry.state {
            DirectoryState::Suspended => {
                lines.push("pwdAccountLockedTime: 000001010000Z".to_owned());
            }
            DirectoryState::LockedOut => lines.push(format!(
                "pwdAccountLockedTime: {}",
                changed(entry).format("%Y%m%d%H%M%SZ")
            )),
            DirectoryState::Deprovisioned => {
                lines.push(format!("shadowExpire: {}", shadow_days(entry)));
            }
            DirectoryState::Active | DirectoryState::Deleted => {}
        }
        for line in &lines {
            assert!(
                line.is_ascii() && !line.ends_with(' '),
                "LDIF line needs base64: {line}"
            );
        }
        out.push_str(&lines.join("\n"));
        out.push_str("\n\n");
    }
    out
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
