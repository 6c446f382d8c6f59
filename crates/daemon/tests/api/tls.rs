//! TLS on TCP (`--tls`, `--tlsverify`): the docker CLI and bollard reach berthd
//! with a client certificate its CA signed, and are refused without one.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};

use crate::{berthd_refuses, builder, free_port};

/// A CA and what it signed, as PEM files in `dir`.
struct Pki {
    dir: tempfile::TempDir,
}

fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("self-signed");
    (Issuer::new(p, key), cert.pem())
}

fn leaf(issuer: &Issuer<'static, KeyPair>, name: &str, server: bool) -> (String, String) {
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    if server {
        p.subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("berth-tls-")
            .tempdir()
            .expect("tmp");
        let (issuer, ca_pem) = ca("berth test CA");
        let (other, other_pem) = ca("another CA");
        let files = [("ca.pem", ca_pem), ("other-ca.pem", other_pem)];
        for (n, c) in files {
            std::fs::write(dir.path().join(n), c).expect("write");
        }
        for (prefix, issuer, server) in [
            ("server", &issuer, true),
            ("client", &issuer, false),
            ("stranger", &other, false),
        ] {
            let (cert, key) = leaf(issuer, prefix, server);
            std::fs::write(dir.path().join(format!("{prefix}.pem")), cert).expect("write");
            std::fs::write(dir.path().join(format!("{prefix}-key.pem")), key).expect("write");
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// The docker CLI on `host` with `tls` flags, from an empty config directory.
fn cli(host: &str, tls: &[String], args: &[&str]) -> std::process::Output {
    let cfg = tempfile::tempdir().expect("tmp");
    Command::new(berth_testkit::docker_cli())
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env("DOCKER_CONFIG", cfg.path())
        .arg("-H")
        .arg(host)
        .args(tls)
        .args(args)
        .output()
        .expect("docker")
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_verify_admits_signed_clients_only() {
    let pki = Pki::new();
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let _d = [
        "-H".to_string(),
        host.clone(),
        "--tlsverify".into(),
        "--tlscacert".into(),
        pki.s("ca.pem"),
        "--tlscert".into(),
        pki.s("server.pem"),
        "--tlskey".into(),
        pki.s("server-key.pem"),
    ]
    .into_iter()
    .fold(builder(), |b, a| b.arg(a))
    .start();
    let flags = |ca: &str, cert: Option<&str>| -> Vec<String> {
        let mut f = vec!["--tlsverify".to_string(), "--tlscacert".into(), pki.s(ca)];
        if let Some(c) = cert {
            f.extend([
                "--tlscert".into(),
                pki.s(&format!("{c}.pem")),
                "--tlskey".into(),
                pki.s(&format!("{c}-key.pem")),
            ]);
        }
        f
    };
    // A client with a certificate the CA signed.
    let o = cli(
        &host,
        &flags("ca.pem", Some("client")),
        &["version", "-f", "{{.Server.Os}}"],
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "linux");
    // No certificate, one another CA signed, or plain HTTP: refused.
    for (what, f) in [
        ("no client certificate", flags("ca.pem", None)),
        (
            "another CA's certificate",
            flags("ca.pem", Some("stranger")),
        ),
        ("plain HTTP", Vec::new()),
    ] {
        let o = cli(&host, &f, &["version", "-f", "{{.Server.Os}}"]);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("linux"),
            "{what} reached the server: {o:?}"
        );
    }
    // The server must prove itself too: a client trusting another CA stops.
    let o = cli(&host, &flags("other-ca.pem", Some("client")), &["version"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("certificate"),
        "{o:?}"
    );
    // An SDK: bollard over rustls with the client's certificate.
    let docker = bollard::Docker::connect_with_ssl(
        &format!("127.0.0.1:{port}"),
        &pki.path("client-key.pem"),
        &pki.path("client.pem"),
        &pki.path("ca.pem"),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("bollard over TLS");
    let v = docker.version().await.expect("version over TLS");
    assert_eq!(v.os.as_deref(), Some("linux"));
    let n = docker
        .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
        .await
        .expect("list over TLS");
    assert!(n.is_empty());
}

#[test]
fn tls_settings_that_cannot_work_stop_the_daemon() {
    let pki = Pki::new();
    let port = free_port();
    // TLS without client verification authenticates no one: not on every interface.
    let e = berthd_refuses(&[
        "-H",
        &format!("tcp://0.0.0.0:{port}"),
        "--tls",
        "--tlscert",
        &pki.s("server.pem"),
        "--tlskey",
        &pki.s("server-key.pem"),
    ]);
    assert!(e.contains("without --tlsverify"), "{e}");
    // Files that are not there, or not what they should be, are named.
    let missing = pki.path("nope.pem");
    let e = berthd_refuses(&[
        "-H",
        &format!("tcp://127.0.0.1:{port}"),
        "--tlsverify",
        "--tlscacert",
        &pki.s("ca.pem"),
        "--tlscert",
        &missing.display().to_string(),
        "--tlskey",
        &pki.s("server-key.pem"),
    ]);
    assert!(e.contains(&missing.display().to_string()), "{e}");
    let e = berthd_refuses(&[
        "-H",
        &format!("tcp://127.0.0.1:{port}"),
        "--tls",
        "--tlscert",
        &pki.s("server-key.pem"),
        "--tlskey",
        &pki.s("server-key.pem"),
    ]);
    assert!(e.contains("server certificate"), "{e}");
    assert!(Path::new(&pki.s("ca.pem")).exists());
}
