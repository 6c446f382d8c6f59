//! Legacy links through the docker CLI: `--link` on the default bridge gives the
//! target's variables and an `/etc/hosts` line; `docker rm --link` removes one;
//! on a user-defined network a link is a DNS alias for the linking container.

use crate::daemon;
use crate::images::busybox;
use crate::network::inspect;

#[test]
fn links_on_the_default_bridge_give_variables_and_a_hosts_line() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run", "-d", "--name", "db", "-e", "FOO=1", "--expose", "5432", &b, "sleep", "300",
    ]);
    let ip = inspect(&d, "db")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!ip.is_empty());
    let env = d.cli_ok(&[
        "run", "--rm", "--name", "web", "--link", "db:mydb", &b, "env",
    ]);
    for want in [
        format!("MYDB_PORT=tcp://{ip}:5432"),
        format!("MYDB_PORT_5432_TCP=tcp://{ip}:5432"),
        format!("MYDB_PORT_5432_TCP_ADDR={ip}"),
        "MYDB_PORT_5432_TCP_PORT=5432".to_string(),
        "MYDB_PORT_5432_TCP_PROTO=tcp".to_string(),
        "MYDB_NAME=/web/mydb".to_string(),
        "MYDB_ENV_FOO=1".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }
    assert!(!env.contains("MYDB_ENV_PATH"), "{env}");
    let hosts = d.cli_ok(&["run", "--rm", "--link", "db:mydb", &b, "cat", "/etc/hosts"]);
    let line = hosts
        .lines()
        .find(|l| l.starts_with(&format!("{ip}\t")))
        .unwrap_or("");
    assert!(line.contains("mydb") && line.contains(" db"), "{hosts}");
    // Stored as dockerd stores them; removed with `docker rm --link`.
    d.cli_ok(&["create", "--name", "app", "--link", "db:mydb", &b, "true"]);
    assert_eq!(
        inspect(&d, "app")["HostConfig"]["Links"],
        serde_json::json!(["/db:/app/mydb"])
    );
    d.cli_ok(&["rm", "--link", "/app/mydb"]);
    assert_eq!(
        inspect(&d, "app")["HostConfig"]["Links"],
        serde_json::Value::Null
    );
    assert_eq!(
        inspect(&d, "db")["State"]["Running"],
        true,
        "the target stays"
    );
    // A link to nothing, or to a stopped container.
    let o = d.cli(&["create", "--link", "nosuch:x", &b, "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("could not get container for nosuch"));
    d.cli_ok(&["create", "--name", "stopped", &b, "true"]);
    let o = d.cli(&["run", "--rm", "--link", "stopped:s", &b, "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("Cannot link to a non running container: /stopped AS"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    d.cli_ok(&["rm", "-f", "db", "app", "stopped"]);
}

#[test]
fn links_on_a_user_network_are_aliases_for_the_linking_container() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["network", "create", "--subnet", "10.249.12.0/24", "lnet"]);
    // The target may come later: on a user network a link is a name.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "lnet",
        "--link",
        "upstream:bar",
        &b,
        "sleep",
        "300",
    ]);
    let v = inspect(&d, "client");
    assert_eq!(
        v["NetworkSettings"]["Networks"]["lnet"]["Links"],
        serde_json::json!(["upstream:bar"]),
        "{v}"
    );
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "upstream",
        "--network",
        "lnet",
        &b,
        "sleep",
        "300",
    ]);
    let ip = inspect(&d, "upstream")["NetworkSettings"]["Networks"]["lnet"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let out = d.cli_ok(&["exec", "client", "nslookup", "bar"]);
    assert!(out.contains(&ip), "{out}");
    // Only for the container that has the link.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "lnet",
        &b,
        "sleep",
        "300",
    ]);
    assert!(!d
        .cli(&["exec", "other", "nslookup", "bar"])
        .status
        .success());
    d.cli_ok(&["rm", "-f", "client", "upstream", "other"]);
    d.cli_ok(&["network", "rm", "lnet"]);
}
